//! Broken and malicious archives: each fails with one line naming the problem, and the
//! blob store is left as it was (no new blob, no temporary file; blobs it had stay).

use super::*;

/// Builds a tar with raw names and link targets (the tar crate's setters refuse the
/// hostile ones).
struct RawTar {
    b: tar::Builder<Vec<u8>>,
}

impl RawTar {
    fn new() -> Self {
        RawTar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn entry(mut self, name: &str, kind: EntryType, link: &str, data: &[u8]) -> Self {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        {
            let ustar = h.as_ustar_mut().unwrap();
            ustar.name = [0; 100];
            ustar.name[..name.len()].copy_from_slice(name.as_bytes());
            ustar.linkname = [0; 100];
            ustar.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, EntryType::Regular, "", data)
    }

    fn bytes(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// A valid docker-archive of one image, entry by entry, for tests to alter.
fn valid_parts() -> (Vec<(String, Vec<u8>)>, String, String) {
    let layer = layer_tar(&[("etc/hostname", b"box")]);
    let diff_id = sha256_digest(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let config_digest = sha256_digest(&config);
    let config_name = format!("{}.json", &config_digest[7..]);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name, "RepoTags": ["box:1"], "Layers": ["l1/layer.tar"],
    }]))
    .unwrap();
    (
        vec![
            ("l1/layer.tar".to_owned(), layer),
            (config_name, config),
            ("manifest.json".to_owned(), manifest),
        ],
        config_digest,
        diff_id,
    )
}

fn archive_of(parts: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut t = RawTar::new();
    for (name, data) in parts {
        t = t.file(name, data);
    }
    t.bytes()
}

/// Loads into a store that already holds one unrelated blob; checks the error is one line
/// and that the store holds exactly that blob afterwards.
fn refused(archive: &[u8]) -> ArchiveError {
    let dir = tempfile::tempdir().unwrap();
    let blobs = store(dir.path(), "blobs");
    let before = blobs.put_bytes(b"an earlier blob").unwrap();
    let err = load_bytes(&blobs, archive).unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains('\n') && !msg.ends_with('.'), "{msg:?}");
    assert_eq!(
        store_files(&blobs),
        vec![before[7..].to_owned()],
        "after: {msg}"
    );
    err
}

#[test]
fn the_valid_archive_loads() {
    let (parts, config_digest, _) = valid_parts();
    let dir = tempfile::tempdir().unwrap();
    let blobs = store(dir.path(), "blobs");
    let loaded = load_bytes(&blobs, &archive_of(&parts)).unwrap();
    assert_eq!(loaded[0].config_digest, config_digest);
}

#[test]
fn names_that_climb_out_or_are_absolute() {
    let (mut parts, ..) = valid_parts();
    parts.insert(0, ("../../evil".to_owned(), b"x".to_vec()));
    let err = refused(&archive_of(&parts));
    assert_eq!(
        err.to_string(),
        "refusing the archive: entry \"../../evil\" climbs out of the archive with \"..\""
    );

    let (mut parts, ..) = valid_parts();
    parts.push(("/etc/cron.d/evil".to_owned(), b"x".to_vec()));
    let err = refused(&archive_of(&parts));
    assert_eq!(
        err.to_string(),
        "refusing the archive: entry \"/etc/cron.d/evil\" has an absolute name"
    );
}

#[test]
fn links_that_point_out() {
    let (parts, ..) = valid_parts();
    let with = |name: &str, kind: EntryType, target: &str| {
        let mut t = RawTar::new().entry(name, kind, target, b"");
        for (n, d) in &parts {
            t = t.file(n, d);
        }
        t.bytes()
    };
    let err = refused(&with(
        "l0/layer.tar",
        EntryType::Symlink,
        "../../../etc/shadow",
    ));
    assert_eq!(
        err.to_string(),
        "refusing the archive: link \"l0/layer.tar\" points at \"../../../etc/shadow\", outside the archive"
    );
    let err = refused(&with("l0/layer.tar", EntryType::Symlink, "/etc/shadow"));
    assert!(matches!(err, ArchiveError::BadLink { .. }), "{err}");
    let err = refused(&with("l0/layer.tar", EntryType::Link, "../etc/shadow"));
    assert!(matches!(err, ArchiveError::BadLink { .. }), "{err}");
    let err = refused(&with("l0/layer.tar", EntryType::Link, "l1/layer.tar"));
    assert_eq!(
        err.to_string(),
        "refusing the archive: link \"l0/layer.tar\" points at \"l1/layer.tar\", which is not a file that comes before it in the archive"
    );
    // A manifest that names a symlink loop finds nothing.
    let mut t = RawTar::new()
        .entry("a/layer.tar", EntryType::Symlink, "../b/layer.tar", b"")
        .entry("b/layer.tar", EntryType::Symlink, "../a/layer.tar", b"");
    for (n, d) in &parts {
        let d = if n == "manifest.json" {
            String::from_utf8(d.clone())
                .unwrap()
                .replace("l1/layer.tar", "a/layer.tar")
                .into_bytes()
        } else {
            d.clone()
        };
        t = t.file(n, &d);
    }
    let err = refused(&t.bytes());
    assert!(matches!(err, ArchiveError::Missing { .. }), "{err}");
}

#[test]
fn special_files_and_duplicates() {
    let (parts, ..) = valid_parts();
    let mut t = RawTar::new().entry("dev", EntryType::Char, "", b"");
    for (n, d) in &parts {
        t = t.file(n, d);
    }
    let err = refused(&t.bytes());
    assert!(matches!(err, ArchiveError::Hostile { .. }), "{err}");

    let mut dup = parts.clone();
    dup.push(parts[2].clone());
    let err = refused(&archive_of(&dup));
    assert_eq!(
        err.to_string(),
        "refusing the archive: \"manifest.json\" appears twice"
    );
}

#[test]
fn digests_that_do_not_match() {
    // The config named by a digest that is not its own.
    let (mut parts, ..) = valid_parts();
    parts[1].1 = br#"{"rootfs":{"diff_ids":[]},"tampered":true}"#.to_vec();
    let err = refused(&archive_of(&parts));
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");

    // A layer that is not what the config says.
    let (mut parts, _, diff_id) = valid_parts();
    parts[0].1 = layer_tar(&[("etc/hostname", b"evil")]);
    let err = refused(&archive_of(&parts));
    assert_eq!(
        err.to_string(),
        format!(
            "image sha256:{}: layer l1/layer.tar is {} once uncompressed, but the config says {diff_id}",
            &parts[1].0[..64],
            sha256_digest(&parts[0].1)
        )
    );

    // An OCI blob whose name is not its digest.
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let image = put_image(
        &src,
        &[(layer_tar(&[("a", b"a")]), Compression::Gzip)],
        &["a:1"],
        "amd64",
    );
    let archive = save_bytes(&src, std::slice::from_ref(&image), ArchiveFormat::Oci);
    let mut t = RawTar::new();
    let mut a = tar::Archive::new(&archive[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if name.ends_with(&image.layers[0].digest[7..]) {
            data[20] ^= 1;
        }
        if e.header().entry_type() == EntryType::Directory {
            t = t.entry(&name, EntryType::Directory, "", b"");
        } else {
            t = t.file(&name, &data);
        }
    }
    let err = refused(&t.bytes());
    assert!(
        matches!(&err, ArchiveError::DigestMismatch { entry, .. } if entry.starts_with("blobs/sha256/")),
        "{err}"
    );
}

#[test]
fn truncated_input() {
    let (parts, ..) = valid_parts();
    let whole = archive_of(&parts);
    // Cut inside the layer's data.
    let err = refused(&whole[..512 + 300]);
    assert_eq!(
        err.to_string(),
        "the archive is truncated: \"l1/layer.tar\" ends after 300 of its 2048 bytes (was the transfer cut short?)"
    );
    // Cut at an entry boundary: no end-of-archive marker.
    let without_marker = &whole[..whole.len() - 1024];
    let boundary = without_marker.len() - 512 - parts[2].1.len().div_ceil(512) * 512;
    let err = refused(&whole[..boundary]);
    assert_eq!(
        err.to_string(),
        "the archive is truncated: it ends without the end-of-archive marker (was the transfer cut short?)"
    );
    // Cut inside a header.
    let err = refused(&whole[..512 + 2048 + 100]);
    assert!(matches!(err, ArchiveError::Truncated { .. }), "{err}");
    // A compressed archive cut short.
    let gz = compress(&whole, Compression::Gzip);
    let err = refused(&gz[..gz.len() / 2]);
    assert!(
        matches!(
            err,
            ArchiveError::Truncated { .. } | ArchiveError::Read { .. }
        ),
        "{err}"
    );
    let zst = compress(&whole, Compression::Zstd);
    let err = refused(&zst[..zst.len() - 10]);
    assert!(
        matches!(
            err,
            ArchiveError::Truncated { .. } | ArchiveError::Read { .. }
        ),
        "{err}"
    );
}

#[test]
fn manifests_naming_absent_files() {
    let (mut parts, ..) = valid_parts();
    parts.remove(0);
    let err = refused(&archive_of(&parts));
    assert_eq!(
        err.to_string(),
        "the archive's manifest.json names \"l1/layer.tar\", which the archive does not contain"
    );

    let (mut parts, ..) = valid_parts();
    parts.remove(1);
    let err = refused(&archive_of(&parts));
    assert!(matches!(err, ArchiveError::Missing { .. }), "{err}");

    // An OCI index naming a manifest that is not there.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", "a".repeat(64)),
            "size": 10,
        }],
    });
    let archive = RawTar::new()
        .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", &serde_json::to_vec(&index).unwrap())
        .bytes();
    let err = refused(&archive);
    assert_eq!(
        err.to_string(),
        format!(
            "the archive's index.json names \"blobs/sha256/{}\", which the archive does not contain",
            "a".repeat(64)
        )
    );
}

#[test]
fn malformed_metadata() {
    let (mut parts, ..) = valid_parts();
    parts[2].1 = b"{not json".to_vec();
    let err = refused(&archive_of(&parts));
    assert_eq!(err.to_string(), "cannot parse manifest.json in the archive");

    let (mut parts, ..) = valid_parts();
    parts[2].1 = String::from_utf8(parts[2].1.clone())
        .unwrap()
        .replace("box:1", "Bad Name:1")
        .into_bytes();
    let err = refused(&archive_of(&parts));
    assert!(matches!(err, ArchiveError::BadTag { .. }), "{err}");

    let (mut parts, ..) = valid_parts();
    parts[2].1 = String::from_utf8(parts[2].1.clone())
        .unwrap()
        .replace(r#"["l1/layer.tar"]"#, r#"["l1/layer.tar","l1/layer.tar"]"#)
        .into_bytes();
    let err = refused(&archive_of(&parts));
    assert!(matches!(err, ArchiveError::LayerCount { .. }), "{err}");

    let err = refused(&RawTar::new().file("hello.txt", b"hi").bytes());
    assert_eq!(
        err.to_string(),
        "not an image archive: it has neither manifest.json (docker-archive) nor index.json (oci-archive)"
    );
    let err = refused(b"this is not a tar file at all, just some text that goes on");
    assert!(
        matches!(
            err,
            ArchiveError::Truncated { .. } | ArchiveError::Read { .. }
        ),
        "{err}"
    );
}
