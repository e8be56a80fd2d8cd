//! Archives checked against skopeo (what CI installs): it reads what `save` writes, and
//! `load` reads what it writes from an OCI layout made with umoci. Each test says
//! "skipped" where a tool is missing.

use std::process::Command;

use super::*;
use crate::image::testutil::need_tool;
use crate::image::unpack::{UnpackOptions, unpack_layer};

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skopeo(args: &[&str]) -> String {
    let mut all = vec!["skopeo", "--insecure-policy"];
    all.extend_from_slice(args);
    run(&all)
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn skopeo_reads_what_we_save() {
    need_tool("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let src = store(dir.path(), "src");
    let images = two_images(&src);
    let config = String::from_utf8(src.read(&images[0].config_digest).unwrap()).unwrap();
    let diff_ids: Vec<String> = images[0].layers.iter().map(|l| l.diff_id.clone()).collect();

    let docker = dir.path().join("docker.tar");
    std::fs::write(&docker, save_bytes(&src, &images, ArchiveFormat::Docker)).unwrap();
    let docker_ref = format!("docker-archive:{}:app:1.0", docker.display());
    assert_eq!(
        skopeo(&["inspect", "--config", "--raw", &docker_ref]),
        config
    );
    let inspect = json(&skopeo(&["inspect", &docker_ref]));
    assert_eq!(inspect["Layers"], serde_json::json!(diff_ids));
    assert_eq!(inspect["Architecture"], "amd64");
    // The second image, by position, and a full copy that checks every digest.
    let second = format!("docker-archive:{}:@1", docker.display());
    let inspect = json(&skopeo(&["inspect", &second]));
    assert_eq!(inspect["Layers"][1], images[1].layers[1].diff_id);
    let copied = dir.path().join("copied");
    skopeo(&["copy", &docker_ref, &format!("oci:{}:x", copied.display())]);

    // A layer that comes twice is a symlink to its first copy, as in Docker's archives.
    let empty = layer_tar(&[]);
    let repeated = put_image(
        &src,
        &[
            (empty.clone(), Compression::Gzip),
            (layer_tar(&[("x", b"x")]), Compression::Zstd),
            (empty, Compression::Gzip),
        ],
        &["rep:1"],
        "amd64",
    );
    let rep = dir.path().join("repeated.tar");
    std::fs::write(
        &rep,
        save_bytes(&src, std::slice::from_ref(&repeated), ArchiveFormat::Docker),
    )
    .unwrap();
    let rep_ref = format!("docker-archive:{}:rep:1", rep.display());
    let inspect = json(&skopeo(&["inspect", &rep_ref]));
    assert_eq!(inspect["Layers"][0], inspect["Layers"][2]);
    skopeo(&["copy", &rep_ref, &format!("oci:{}:rep", copied.display())]);

    let oci = dir.path().join("oci.tar");
    std::fs::write(&oci, save_bytes(&src, &images, ArchiveFormat::Oci)).unwrap();
    let oci_ref = format!("oci-archive:{}:docker.io/library/app:1.0", oci.display());
    assert_eq!(skopeo(&["inspect", "--config", "--raw", &oci_ref]), config);
    let raw = json(&skopeo(&["inspect", "--raw", &oci_ref]));
    let digests: Vec<&str> = images[0].layers.iter().map(|l| l.digest.as_str()).collect();
    let got: Vec<&str> = raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(got, digests, "layers go in as stored");
    assert_eq!(
        raw["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    skopeo(&["copy", &oci_ref, &format!("oci:{}:y", copied.display())]);
}

/// An OCI layout made with umoci (one gzip layer holding a file), copied by skopeo into
/// both archive forms, then loaded; the layer unpacks.
#[test]
fn we_load_what_skopeo_writes() {
    need_tool("skopeo");
    need_tool("umoci");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let layout = d.join("layout");
    let bundle = d.join("bundle");
    let l = layout.display().to_string();
    run(&["umoci", "init", "--layout", &l]);
    run(&["umoci", "new", "--image", &format!("{l}:t")]);
    run(&[
        "umoci",
        "unpack",
        "--rootless",
        "--image",
        &format!("{l}:t"),
        &bundle.display().to_string(),
    ]);
    std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
    std::fs::write(bundle.join("rootfs/etc/greeting"), b"hello from umoci\n").unwrap();
    run(&[
        "umoci",
        "repack",
        "--image",
        &format!("{l}:t"),
        &bundle.display().to_string(),
    ]);
    let raw = json(&skopeo(&["inspect", "--raw", &format!("oci:{l}:t")]));
    let config_digest = raw["config"]["digest"].as_str().unwrap().to_owned();

    let docker = d.join("docker.tar");
    let oci = d.join("oci.tar");
    let oci_bare = d.join("oci-bare.tar");
    skopeo(&[
        "copy",
        &format!("oci:{l}:t"),
        &format!("docker-archive:{}:greet:v1", docker.display()),
    ]);
    skopeo(&[
        "copy",
        &format!("oci:{l}:t"),
        &format!("oci-archive:{}:greet:v1", oci.display()),
    ]);
    skopeo(&[
        "copy",
        &format!("oci:{l}:t"),
        &format!("oci-archive:{}:latest", oci_bare.display()),
    ]);
    let gz = d.join("docker.tar.gz");
    std::fs::write(
        &gz,
        compress(&std::fs::read(&docker).unwrap(), Compression::Gzip),
    )
    .unwrap();

    for (path, format) in [
        (&docker, ArchiveFormat::Docker),
        (&gz, ArchiveFormat::Docker),
        (&oci, ArchiveFormat::Oci),
        (&oci_bare, ArchiveFormat::Oci),
    ] {
        let blobs = store(
            d,
            &format!("store-{}", path.file_name().unwrap().to_string_lossy()),
        );
        let file = std::fs::File::open(path).unwrap();
        let loaded = load(&blobs, file, &LoadOptions::default()).unwrap();
        assert_eq!(loaded.len(), 1, "{path:?}");
        let img = &loaded[0];
        assert_eq!(img.format, format);
        assert_eq!(img.config_digest, config_digest, "{path:?}");
        if path == &oci_bare {
            assert!(img.repo_tags.is_empty());
            assert_eq!(img.ref_name.as_deref(), Some("latest"));
        } else {
            assert_eq!(
                img.repo_tags,
                vec!["docker.io/library/greet:v1".to_owned()],
                "{path:?}"
            );
        }
        assert_eq!(img.layers.len(), 1);
        let layer = &img.layers[0];
        let dest = d.join(format!(
            "unpacked-{}",
            path.file_name().unwrap().to_string_lossy()
        ));
        let stats = unpack_layer(
            &blobs.path(&layer.digest),
            layer.compression,
            &dest,
            &UnpackOptions {
                ignore_chown_errors: true,
            },
        )
        .unwrap();
        assert_eq!(stats.diff_id, layer.diff_id);
        assert_eq!(
            std::fs::read(dest.join("etc/greeting")).unwrap(),
            b"hello from umoci\n"
        );
    }
}
