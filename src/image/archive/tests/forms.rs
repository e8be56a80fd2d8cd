//! The other forms an archive comes in: Docker 25+'s docker-archive (an OCI layout with a
//! manifest.json), and oci-archives whose index names a multi-platform index.

use super::*;

/// Docker 25+ writes an OCI layout and a manifest.json into blobs/; docker load follows
/// manifest.json, and so do we.
#[test]
fn docker_25_archives_are_read_through_their_manifest_json() {
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let image = &two_images(&src)[0];
    // Start from our OCI archive (its blobs, index.json and oci-layout), with the layers
    // uncompressed as Docker writes them, and add manifest.json.
    let plain: Vec<SaveLayer> = image
        .layers
        .iter()
        .map(|l| {
            let c = media_compression(&l.media_type).unwrap();
            let tar = uncompressed(&src.read(&l.digest).unwrap(), c);
            SaveLayer {
                digest: src.put_bytes(&tar).unwrap(),
                diff_id: l.diff_id.clone(),
                media_type: oci_layer_type(Compression::None).to_owned(),
            }
        })
        .collect();
    let docker25 = SaveImage {
        layers: plain.clone(),
        ..image.clone()
    };
    let oci = save_bytes(&src, std::slice::from_ref(&docker25), ArchiveFormat::Oci);
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", &image.config_digest[7..]),
        "RepoTags": ["app:1.0"],
        "Layers": plain.iter().map(|l| format!("blobs/sha256/{}", &l.digest[7..])).collect::<Vec<_>>(),
    }]);
    let mut b = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(&oci[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        b.append(&h, &data[..]).unwrap();
    }
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let mut h = Header::new_ustar();
    h.set_path("manifest.json").unwrap();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &bytes[..]).unwrap();
    let archive = b.into_inner().unwrap();

    let dst = store(dir.path(), "dst");
    let loaded = load_bytes(&dst, &archive).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].format, ArchiveFormat::Docker);
    assert_eq!(loaded[0].config_digest, image.config_digest);
    assert_eq!(
        loaded[0].repo_tags,
        vec!["docker.io/library/app:1.0".to_owned()]
    );
    let diff_ids: Vec<String> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
    assert_eq!(loaded[0].diff_ids(), diff_ids);
}

/// An oci-archive whose index names a multi-platform index: the wanted platform's image
/// is loaded; a platform it lacks is an error listing what it has.
#[test]
fn platforms_are_chosen_from_a_nested_index() {
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let amd = put_image(
        &src,
        &[(layer_tar(&[("arch", b"amd64")]), Compression::Gzip)],
        &[],
        "amd64",
    );
    let arm = put_image(
        &src,
        &[(layer_tar(&[("arch", b"arm64")]), Compression::Gzip)],
        &[],
        "arm64",
    );
    let archive = save_bytes(&src, &[amd.clone(), arm.clone()], ArchiveFormat::Oci);
    // Rewrite index.json: one entry, an index of both manifests with their platforms.
    let mut entries: Vec<(Header, Vec<u8>)> = Vec::new();
    let mut a = tar::Archive::new(&archive[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        entries.push((e.header().clone(), data));
    }
    let (_, index) = entries.pop().unwrap();
    let mut index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let platforms = [("amd64", None), ("arm64", Some("v8"))];
    for (m, (arch, variant)) in index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(platforms)
    {
        m["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            m["platform"]["variant"] = v.into();
        }
    }
    let nested = serde_json::to_vec(&index).unwrap();
    let nested_digest = sha256_digest(&nested);
    let top = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": nested_digest,
            "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi:1"},
        }],
    }))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (h, data) in &entries {
        b.append(h, &data[..]).unwrap();
    }
    for (name, data) in [
        (format!("blobs/sha256/{}", &nested_digest[7..]), &nested),
        ("index.json".to_owned(), &top),
    ] {
        let mut h = Header::new_ustar();
        h.set_path(&name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    let archive = b.into_inner().unwrap();

    let want = |arch: &str| LoadOptions {
        platform: crate::image::registry::Platform::parse(arch).unwrap(),
    };
    for (arch, image) in [
        ("linux/arm64", &arm),
        ("linux/arm64/v8", &arm),
        ("linux/amd64", &amd),
    ] {
        let dst = store(dir.path(), &format!("dst-{}", arch.replace('/', "-")));
        let loaded = load(&dst, &archive[..], &want(arch)).unwrap();
        assert_eq!(loaded.len(), 1, "{arch}");
        assert_eq!(loaded[0].config_digest, image.config_digest, "{arch}");
        assert_eq!(
            loaded[0].repo_tags,
            vec!["docker.io/library/multi:1".to_owned()]
        );
    }
    let dst = store(dir.path(), "dst-s390x");
    let err = load(&dst, &archive[..], &want("linux/s390x")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the archive's index has no image for linux/s390x (it has: linux/amd64, linux/arm64)"
    );
    assert!(store_files(&dst).is_empty(), "{:?}", store_files(&dst));
}
