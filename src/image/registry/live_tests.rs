//! Tests against real registries on 127.0.0.1. They are `#[ignore]`d, so a plain
//! `cargo test` counts them as ignored; run them with `cargo test -- --ignored` after
//! starting the registries (see /work/scratch/registry/README.md for the fixture set up):
//! - `BURROW_TEST_REGISTRY=127.0.0.1:5150`: plain http, no auth, holding test/busybox:{latest,
//!   v2s2,zstd,plain}, test/multi:latest, test/broken:{badsize,foreign}
//! - `BURROW_TEST_AUTH_REGISTRY=127.0.0.1:5151`: plain http, htpasswd user
//!   `BURROW_TEST_AUTH_USER` / `BURROW_TEST_AUTH_PASS`, holding private/busybox:latest
//! - `BURROW_TEST_TLS_REGISTRY=127.0.0.1:5152`: https with a self-signed certificate, same
//!   content as the plain one
//! - `BURROW_TEST_BEARER_REGISTRY=127.0.0.1:5153`: the token-auth front in
//!   /work/scratch/registry/fixtures/bearer_proxy.py (user alice / s3cret for other/*),
//!   which also redirects blobs to another host name and fails each blob's first GET with 503

use std::sync::Mutex;

use super::*;
use crate::image::Compression;
use crate::image::blobs::{BlobStore, sha256_digest};
use crate::image::reference::Reference;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: this test needs a live registry"))
}

fn plain_registry() -> String {
    env("BURROW_TEST_REGISTRY")
}

fn insecure() -> RegistryOptions {
    RegistryOptions {
        insecure: true,
        platform: Platform::parse("linux/amd64").unwrap(),
        retries: 1,
        ..RegistryOptions::default()
    }
}

struct Recorder(Mutex<Vec<ProgressEvent>>);

impl Progress for Recorder {
    fn event(&self, ev: ProgressEvent) {
        self.0.lock().unwrap().push(ev);
    }
}

fn pull(
    reference: &str,
    opts: &RegistryOptions,
    blobs: &BlobStore,
) -> (Result<FetchedImage, RegistryError>, Vec<ProgressEvent>) {
    let r = Reference::parse(reference).unwrap();
    let rec = Recorder(Mutex::new(Vec::new()));
    let result = fetch_image(&r, opts, blobs, &rec);
    (result, rec.0.into_inner().unwrap())
}

fn check_image(img: &FetchedImage, blobs: &BlobStore, compression: Compression) {
    assert_eq!(sha256_digest(&img.manifest), img.manifest_digest);
    assert_eq!(sha256_digest(&img.config), img.config_digest);
    assert_eq!(img.layers.len(), 2);
    for l in &img.layers {
        assert_eq!(l.compression, compression, "{l:?}");
        let data = blobs.read(&l.digest).unwrap();
        assert_eq!(data.len() as u64, l.size);
    }
    let config: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
}

#[test]
#[ignore = "needs BURROW_TEST_REGISTRY (a live registry)"]
fn pulls_oci_docker_zstd_and_plain_images() {
    let reg = plain_registry();
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::new(dir.path());
    let opts = insecure();

    let (img, events) = pull(&format!("{reg}/test/busybox:latest"), &opts, &blobs);
    let img = img.unwrap();
    check_image(&img, &blobs, Compression::Gzip);
    assert!(img.index_digest.is_none());
    assert_eq!(
        events[0],
        ProgressEvent::Resolved {
            manifest_digest: img.manifest_digest.clone()
        }
    );
    for l in &img.layers {
        assert!(events.contains(&ProgressEvent::LayerStart {
            digest: l.digest.clone(),
            size: l.size
        }));
        assert!(events.contains(&ProgressEvent::LayerBytes {
            digest: l.digest.clone(),
            bytes: l.size
        }));
        assert!(events.contains(&ProgressEvent::LayerDone {
            digest: l.digest.clone()
        }));
    }

    // Second pull: everything is present already.
    let (again, events) = pull(&format!("{reg}/test/busybox:latest"), &opts, &blobs);
    assert_eq!(again.unwrap(), img);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ProgressEvent::LayerExists { .. }))
            .count(),
        2
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ProgressEvent::LayerStart { .. }))
    );

    // By digest.
    let (by_digest, _) = pull(
        &format!("{reg}/test/busybox@{}", img.manifest_digest),
        &opts,
        &blobs,
    );
    assert_eq!(by_digest.unwrap().manifest_digest, img.manifest_digest);

    let (v2s2, _) = pull(&format!("{reg}/test/busybox:v2s2"), &opts, &blobs);
    let v2s2 = v2s2.unwrap();
    check_image(&v2s2, &blobs, Compression::Gzip);
    assert_eq!(
        v2s2.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let (zstd, _) = pull(&format!("{reg}/test/busybox:zstd"), &opts, &blobs);
    check_image(&zstd.unwrap(), &blobs, Compression::Zstd);
    let (plain, _) = pull(&format!("{reg}/test/busybox:plain"), &opts, &blobs);
    check_image(&plain.unwrap(), &blobs, Compression::None);
    // Only verified blobs, no temporaries.
    assert_eq!(blobs.clean_temp_files().unwrap(), 0);
}

#[test]
#[ignore = "needs BURROW_TEST_REGISTRY (a live registry)"]
fn chooses_the_platform_from_an_index() {
    let reg = plain_registry();
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::new(dir.path());
    let (img, _) = pull(&format!("{reg}/test/multi:latest"), &insecure(), &blobs);
    let img = img.unwrap();
    let index_digest = img.index_digest.clone().expect("pulled through an index");
    let config: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    assert_eq!(config["architecture"], "amd64");

    let arm = RegistryOptions {
        platform: Platform::parse("linux/arm64").unwrap(),
        ..insecure()
    };
    let (img_arm, _) = pull(&format!("{reg}/test/multi@{index_digest}"), &arm, &blobs);
    let img_arm = img_arm.unwrap();
    assert_eq!(img_arm.index_digest.as_deref(), Some(index_digest.as_str()));
    assert_ne!(img_arm.manifest_digest, img.manifest_digest);
    let config: serde_json::Value = serde_json::from_slice(&img_arm.config).unwrap();
    assert_eq!(config["architecture"], "arm64");

    let s390x = RegistryOptions {
        platform: Platform::parse("linux/s390x").unwrap(),
        ..insecure()
    };
    let (err, _) = pull(&format!("{reg}/test/multi:latest"), &s390x, &blobs);
    let err = err.unwrap_err();
    assert!(
        matches!(&err, RegistryError::NoMatchingPlatform { available, .. } if available == &["linux/arm64", "linux/amd64"]),
        "{err:?}"
    );
}

#[test]
#[ignore = "needs BURROW_TEST_REGISTRY (a live registry)"]
fn reports_missing_broken_and_unreachable() {
    let reg = plain_registry();
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::new(dir.path());
    let opts = insecure();

    let (err, _) = pull(&format!("{reg}/test/busybox:nope"), &opts, &blobs);
    assert_eq!(
        err.unwrap_err().to_string(),
        format!("manifest unknown: {reg}/test/busybox:nope does not exist")
    );
    let (err, _) = pull(&format!("{reg}/test/nothing-here:latest"), &opts, &blobs);
    assert!(matches!(
        err.unwrap_err(),
        RegistryError::ManifestUnknown { .. }
    ));
    let missing = format!("sha256:{}", "1".repeat(64));
    let (err, _) = pull(&format!("{reg}/test/busybox@{missing}"), &opts, &blobs);
    assert!(matches!(
        err.unwrap_err(),
        RegistryError::ManifestUnknown { .. }
    ));

    let (err, _) = pull(&format!("{reg}/test/broken:badsize"), &opts, &blobs);
    let err = err.unwrap_err();
    assert!(matches!(err, RegistryError::BlobMismatch { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not match its digest"),
        "{err}"
    );
    let (err, _) = pull(&format!("{reg}/test/broken:foreign"), &opts, &blobs);
    assert!(matches!(
        err.unwrap_err(),
        RegistryError::ForeignLayer { .. }
    ));
    // The broken pulls stored the config at most, never a bad layer or a temporary.
    assert_eq!(blobs.clean_temp_files().unwrap(), 0);
    assert!(blobs.list().unwrap().len() <= 1);

    // Without --tls-verify=false a plain-http registry fails with a hint.
    let strict = RegistryOptions {
        insecure: false,
        ..insecure()
    };
    let (err, _) = pull(&format!("{reg}/test/busybox:latest"), &strict, &blobs);
    let msg = err.unwrap_err().to_string();
    assert!(msg.contains("--tls-verify=false"), "{msg}");

    // Nothing listens on port 1.
    let (err, _) = pull("127.0.0.1:1/test/busybox:latest", &opts, &blobs);
    assert_eq!(
        err.unwrap_err().to_string(),
        "cannot reach registry 127.0.0.1:1: connection refused (is it running?)"
    );
}

#[test]
#[ignore = "needs BURROW_TEST_AUTH_REGISTRY, BURROW_TEST_AUTH_USER and BURROW_TEST_AUTH_PASS"]
fn basic_auth_login_and_pull() {
    let reg = env("BURROW_TEST_AUTH_REGISTRY");
    let user = env("BURROW_TEST_AUTH_USER");
    let pass = env("BURROW_TEST_AUTH_PASS");
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::new(dir.path().join("blobs"));
    let auth_file = dir.path().join("auth.json");
    let opts = RegistryOptions {
        auth_files: vec![auth_file.clone()],
        ..insecure()
    };
    let image = format!("{reg}/private/busybox:latest");

    let (err, _) = pull(&image, &opts, &blobs);
    let err = err.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("(burrow login {reg})")),
        "{err}"
    );

    let err = login(&reg, &user, "wrong", &opts).unwrap_err();
    assert!(
        matches!(err, RegistryError::CredentialsRejected { .. }),
        "{err:?}"
    );
    login(&reg, &user, &pass, &opts).unwrap();
    login(&format!("http://{reg}/"), &user, &pass, &opts).unwrap();

    crate::image::auth::store(&auth_file, &reg, &user, "wrong").unwrap();
    let (err, _) = pull(&image, &opts, &blobs);
    let err = err.unwrap_err();
    assert!(
        matches!(err, RegistryError::CredentialsRejected { .. }),
        "{err:?}"
    );

    crate::image::auth::store(&auth_file, &reg, &user, &pass).unwrap();
    let (img, _) = pull(&image, &opts, &blobs);
    check_image(&img.unwrap(), &blobs, Compression::Gzip);
}

#[test]
#[ignore = "needs BURROW_TEST_TLS_REGISTRY (a live https registry with a self-signed certificate)"]
fn self_signed_https_needs_insecure() {
    let reg = env("BURROW_TEST_TLS_REGISTRY");
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::new(dir.path());
    let strict = RegistryOptions {
        insecure: false,
        ..insecure()
    };
    let (err, _) = pull(&format!("{reg}/test/busybox:latest"), &strict, &blobs);
    let err = err.unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("--tls-verify=false"), "{err}");
    let (img, _) = pull(&format!("{reg}/test/busybox:latest"), &insecure(), &blobs);
    check_image(&img.unwrap(), &blobs, Compression::Gzip);
}

#[test]
#[ignore = "needs BURROW_TEST_BEARER_REGISTRY (fixtures/bearer_proxy.py in front of a registry)"]
fn bearer_tokens_redirects_and_retries() {
    let reg = env("BURROW_TEST_BEARER_REGISTRY");
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::new(dir.path().join("blobs"));
    let auth_file = dir.path().join("auth.json");
    let opts = RegistryOptions {
        auth_files: vec![auth_file.clone()],
        retries: 2,
        ..insecure()
    };
    // Anonymous token; blobs come through a redirect after one 503 each.
    let (img, _) = pull(&format!("{reg}/test/busybox:latest"), &opts, &blobs);
    check_image(&img.unwrap(), &blobs, Compression::Gzip);

    let private = format!("{reg}/other/busybox:latest");
    let (err, _) = pull(&private, &opts, &blobs);
    let err = err.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");

    crate::image::auth::store(&auth_file, &reg, "alice", "wrong").unwrap();
    let (err, _) = pull(&private, &opts, &blobs);
    let err = err.unwrap_err();
    assert!(
        matches!(err, RegistryError::CredentialsRejected { .. }),
        "{err:?}"
    );
    let err = login(&reg, "alice", "wrong", &opts).unwrap_err();
    assert!(
        matches!(err, RegistryError::CredentialsRejected { .. }),
        "{err:?}"
    );
    login(&reg, "alice", "s3cret", &opts).unwrap();

    crate::image::auth::store(&auth_file, &reg, "alice", "s3cret").unwrap();
    let (img, _) = pull(&private, &opts, &blobs);
    check_image(&img.unwrap(), &blobs, Compression::Gzip);
}
