//! Archives both ways: save → load round trips in both forms; `forms` reads Docker 25+'s
//! form and multi-platform indexes; `hostile` feeds broken and malicious archives; `tools`
//! checks the archives with skopeo and loads what skopeo writes.

use std::io::{Read, Write};
use std::path::Path;

use tar::{EntryType, Header};

use super::*;
use crate::image::blobs::{BlobStore, sha256_digest};

mod forms;
mod hostile;
mod tools;

pub(super) fn store(dir: &Path, name: &str) -> BlobStore {
    BlobStore::new(dir.join(name))
}

/// A small layer tar (files with the given contents), made with the tar crate.
pub(super) fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub(super) fn compress(data: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

/// Stores layers (tar bytes, how to store them) and a config naming their diff ids.
pub(super) fn put_image(
    blobs: &BlobStore,
    layers: &[(Vec<u8>, Compression)],
    tags: &[&str],
    arch: &str,
) -> SaveImage {
    let mut save_layers = Vec::new();
    for (tar, compression) in layers {
        let blob = compress(tar, *compression);
        let digest = blobs.put_bytes(&blob).unwrap();
        save_layers.push(SaveLayer {
            digest,
            diff_id: sha256_digest(tar),
            media_type: oci_layer_type(*compression).to_owned(),
        });
    }
    let diff_ids: Vec<&str> = save_layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [],
    }))
    .unwrap();
    SaveImage {
        config_digest: blobs.put_bytes(&config).unwrap(),
        layers: save_layers,
        repo_tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

/// Two images sharing a base layer; layers stored gzip, zstd and plain.
pub(super) fn two_images(blobs: &BlobStore) -> Vec<SaveImage> {
    let base = layer_tar(&[("bin/sh", b"#!shell"), ("etc/passwd", b"root:x:0:0")]);
    let app = layer_tar(&[("app/run", b"run the app")]);
    let data = layer_tar(&[("data/db", &[9u8; 100_000])]);
    vec![
        put_image(
            blobs,
            &[(base.clone(), Compression::Gzip), (app, Compression::Zstd)],
            &["app:1.0", "registry.example:5000/team/app:latest"],
            "amd64",
        ),
        put_image(
            blobs,
            &[(base, Compression::Gzip), (data, Compression::None)],
            &["data"],
            "amd64",
        ),
    ]
}

pub(super) fn save_bytes(
    blobs: &BlobStore,
    images: &[SaveImage],
    format: ArchiveFormat,
) -> Vec<u8> {
    let mut out = Vec::new();
    save(blobs, images, format, &mut out).unwrap();
    out
}

pub(super) fn load_bytes(
    blobs: &BlobStore,
    bytes: &[u8],
) -> Result<Vec<LoadedImage>, ArchiveError> {
    load(blobs, bytes, &LoadOptions::default())
}

pub(super) fn entry_names(archive: &[u8]) -> Vec<(String, EntryType)> {
    let mut a = tar::Archive::new(archive);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().entry_type(),
            )
        })
        .collect()
}

/// Files in the store's directory, temporary ones included.
pub(super) fn store_files(blobs: &BlobStore) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(blobs.root().join("sha256"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub(super) fn uncompressed(tar_blob: &[u8], compression: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    match compression {
        Compression::None => out = tar_blob.to_vec(),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(tar_blob)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::Zstd => out = zstd::decode_all(tar_blob).unwrap(),
    }
    out
}

#[test]
fn docker_archive_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let images = two_images(&src);
    let archive = save_bytes(&src, &images, ArchiveFormat::Docker);

    // Docker 20.10's layout.
    let names = entry_names(&archive);
    let files: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    assert!(files.contains(&"manifest.json"));
    assert!(files.contains(&"repositories"));
    let config_hex = &images[0].config_digest[7..];
    assert!(files.contains(&format!("{config_hex}.json").as_str()));
    let layer_tars = files.iter().filter(|n| n.ends_with("/layer.tar")).count();
    assert_eq!(layer_tars, 3, "the shared base is written once: {files:?}");
    assert_eq!(files.iter().filter(|n| n.ends_with("/VERSION")).count(), 3);

    let dst = store(dir.path(), "dst");
    let loaded = load_bytes(&dst, &archive).unwrap();
    assert_eq!(loaded.len(), 2);
    for (img, want) in loaded.iter().zip(&images) {
        assert_eq!(img.format, ArchiveFormat::Docker);
        assert_eq!(img.config_digest, want.config_digest);
        assert_eq!(img.config, src.read(&want.config_digest).unwrap());
        let diff_ids: Vec<String> = want.layers.iter().map(|l| l.diff_id.clone()).collect();
        assert_eq!(img.diff_ids(), diff_ids);
        for l in &img.layers {
            // Stored as the archive had them: uncompressed, named by their diff id.
            assert_eq!(l.digest, l.diff_id);
            assert_eq!(l.compression, Compression::None);
            assert_eq!(l.media_type, "application/vnd.oci.image.layer.v1.tar");
            assert_eq!(dst.read(&l.digest).unwrap().len() as u64, l.size);
        }
        // The manifest made for it is in the store and describes it.
        let stored: oci_spec::image::ImageManifest =
            serde_json::from_slice(&dst.read(&img.manifest_digest).unwrap()).unwrap();
        assert_eq!(stored, img.manifest);
        assert_eq!(
            img.manifest.config().digest().to_string(),
            img.config_digest
        );
        assert_eq!(img.manifest.layers().len(), img.layers.len());
    }
    assert_eq!(
        loaded[0].repo_tags,
        vec![
            "docker.io/library/app:1.0".to_owned(),
            "registry.example:5000/team/app:latest".to_owned()
        ]
    );
    assert_eq!(
        loaded[1].repo_tags,
        vec!["docker.io/library/data:latest".to_owned()]
    );

    // What was loaded saves to the same bytes, and saving is deterministic.
    let again: Vec<SaveImage> = loaded
        .iter()
        .map(|i| SaveImage {
            config_digest: i.config_digest.clone(),
            layers: i
                .layers
                .iter()
                .map(|l| SaveLayer {
                    digest: l.digest.clone(),
                    diff_id: l.diff_id.clone(),
                    media_type: l.media_type.clone(),
                })
                .collect(),
            repo_tags: i.repo_tags.clone(),
        })
        .collect();
    assert_eq!(save_bytes(&dst, &again, ArchiveFormat::Docker), archive);
    assert_eq!(save_bytes(&src, &images, ArchiveFormat::Docker), archive);
}

#[test]
fn docker_archive_metadata_is_what_docker_writes() {
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let images = two_images(&src);
    let archive = save_bytes(&src, &images[..1], ArchiveFormat::Docker);
    let mut a = tar::Archive::new(&archive[..]);
    let mut files = std::collections::HashMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let item = &manifest[0];
    let config_hex = &images[0].config_digest[7..];
    assert_eq!(item["Config"], format!("{config_hex}.json"));
    assert_eq!(
        item["RepoTags"],
        serde_json::json!(["app:1.0", "registry.example:5000/team/app:latest"])
    );
    let layers: Vec<&str> = item["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(layers.len(), 2);
    let top = layers[1].strip_suffix("/layer.tar").unwrap();
    let repos: serde_json::Value = serde_json::from_slice(&files["repositories"]).unwrap();
    assert_eq!(repos["app"]["1.0"], top);
    assert_eq!(repos["registry.example:5000/team/app"]["latest"], top);
    assert_eq!(files[&format!("{top}/VERSION")], b"1.0");
    let json: serde_json::Value = serde_json::from_slice(&files[&format!("{top}/json")]).unwrap();
    assert_eq!(json["id"], top);
    assert_eq!(
        json["parent"],
        layers[0].strip_suffix("/layer.tar").unwrap()
    );
    assert_eq!(json["os"], "linux");
    // layer.tar is the uncompressed layer: its digest is the diff id.
    for (name, layer) in layers.iter().zip(&images[0].layers) {
        assert_eq!(sha256_digest(&files[*name]), layer.diff_id);
    }
    assert_eq!(
        sha256_digest(&files[&format!("{config_hex}.json")]),
        images[0].config_digest
    );
}

#[test]
fn oci_archive_round_trip_keeps_layers_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let images = two_images(&src);
    let archive = save_bytes(&src, &images, ArchiveFormat::Oci);
    let names = entry_names(&archive);
    assert_eq!(names[0].0, "oci-layout");
    assert_eq!(names.last().unwrap().0, "index.json");

    let dst = store(dir.path(), "dst");
    let loaded = load_bytes(&dst, &archive).unwrap();
    assert_eq!(loaded.len(), 2);
    for (img, want) in loaded.iter().zip(&images) {
        assert_eq!(img.format, ArchiveFormat::Oci);
        assert_eq!(img.config_digest, want.config_digest);
        let digests: Vec<&str> = img.layers.iter().map(|l| l.digest.as_str()).collect();
        let want_digests: Vec<&str> = want.layers.iter().map(|l| l.digest.as_str()).collect();
        assert_eq!(
            digests, want_digests,
            "layers keep their compression and digest"
        );
        for (l, w) in img.layers.iter().zip(&want.layers) {
            assert_eq!(l.diff_id, w.diff_id);
            assert_eq!(l.media_type, w.media_type);
            let blob = dst.read(&l.digest).unwrap();
            assert_eq!(
                sha256_digest(&uncompressed(&blob, l.compression)),
                l.diff_id
            );
        }
        assert_eq!(
            sha256_digest(&dst.read(&img.manifest_digest).unwrap()),
            img.manifest_digest
        );
        assert_eq!(img.ref_name, None);
    }
    assert_eq!(
        loaded[0].repo_tags,
        vec![
            "docker.io/library/app:1.0".to_owned(),
            "registry.example:5000/team/app:latest".to_owned()
        ],
        "two index entries for one manifest make one image with two names"
    );
    assert_eq!(save_bytes(&src, &images, ArchiveFormat::Oci), archive);
}

#[test]
fn untagged_images_save_and_load_without_names() {
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let image = put_image(
        &src,
        &[(layer_tar(&[("a", b"a")]), Compression::Gzip)],
        &[],
        "amd64",
    );
    for format in [ArchiveFormat::Docker, ArchiveFormat::Oci] {
        let archive = save_bytes(&src, std::slice::from_ref(&image), format);
        let dst = store(dir.path(), &format!("dst-{format:?}"));
        let loaded = load_bytes(&dst, &archive).unwrap();
        assert_eq!(loaded.len(), 1);
        assert!(loaded[0].repo_tags.is_empty());
        assert_eq!(loaded[0].config_digest, image.config_digest);
        if format == ArchiveFormat::Docker {
            let names: Vec<String> = entry_names(&archive).into_iter().map(|(n, _)| n).collect();
            assert!(!names.contains(&"repositories".to_owned()));
        }
    }
    let mut bad = image.clone();
    bad.repo_tags = vec!["app@sha256:".to_owned() + &"a".repeat(64)];
    let err = save(&src, &[bad], ArchiveFormat::Docker, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, ArchiveError::Untagged { .. }), "{err}");
}

/// Docker links a layer that appears twice to its first copy; loading follows the link.
#[test]
fn a_repeated_layer_is_a_symlink_in_docker_archives() {
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let empty = layer_tar(&[]);
    let image = put_image(
        &src,
        &[
            (empty.clone(), Compression::Gzip),
            (layer_tar(&[("x", b"x")]), Compression::Gzip),
            (empty, Compression::Gzip),
        ],
        &["rep:1"],
        "amd64",
    );
    let archive = save_bytes(&src, std::slice::from_ref(&image), ArchiveFormat::Docker);
    let links: Vec<(String, EntryType)> = entry_names(&archive)
        .into_iter()
        .filter(|(_, k)| *k == EntryType::Symlink)
        .collect();
    assert_eq!(links.len(), 1, "{links:?}");
    let dst = store(dir.path(), "dst");
    let loaded = load_bytes(&dst, &archive).unwrap();
    assert_eq!(loaded[0].layers.len(), 3);
    assert_eq!(loaded[0].layers[0].digest, loaded[0].layers[2].digest);
}

#[test]
fn compressed_archives_load() {
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let images = two_images(&src);
    for format in [ArchiveFormat::Docker, ArchiveFormat::Oci] {
        let archive = save_bytes(&src, &images, format);
        for c in [Compression::Gzip, Compression::Zstd] {
            let dst = store(dir.path(), &format!("dst-{format:?}-{c:?}"));
            let loaded = load_bytes(&dst, &compress(&archive, c)).unwrap();
            assert_eq!(loaded.len(), 2, "{format:?} {c:?}");
            assert_eq!(loaded[1].config_digest, images[1].config_digest);
        }
    }
    // A pipe that hands over one byte at a time still has its magic recognised.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let gz = compress(
        &save_bytes(&src, &images, ArchiveFormat::Oci),
        Compression::Zstd,
    );
    let dst = store(dir.path(), "dst-trickle");
    let loaded = load(&dst, Trickle(&gz), &LoadOptions::default()).unwrap();
    assert_eq!(loaded.len(), 2);
}

#[test]
fn save_checks_everything_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let mut images = two_images(&src);
    // A compressed layer whose content no longer matches its diff id.
    images[1].layers[0].diff_id = sha256_digest(b"something else");
    let mut out = Vec::new();
    let err = save(&src, &images, ArchiveFormat::Docker, &mut out).unwrap_err();
    assert!(matches!(err, ArchiveError::CorruptLayer { .. }), "{err}");
    assert!(out.is_empty(), "nothing written before the check");

    let mut images = two_images(&src);
    src.remove(&images[1].layers[1].digest).unwrap();
    for format in [ArchiveFormat::Docker, ArchiveFormat::Oci] {
        let mut out = Vec::new();
        let err = save(&src, &images, format, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot save image {}: blob {} is not in the store (pull or load the image again)",
                images[1].config_digest, images[1].layers[1].digest
            )
        );
        assert!(out.is_empty());
    }
    images.truncate(1);
    images[0].layers[0].media_type =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into();
    let err = save(&src, &images, ArchiveFormat::Oci, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, ArchiveError::Unsupported { .. }), "{err}");
}
