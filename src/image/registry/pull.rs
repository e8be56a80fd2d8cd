//! `fetch_image` and `login`: resolve a reference to one platform's manifest, then bring
//! its config and layers into the blob store, verified, in parallel, with retries.

use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ureq::http::header;

use super::client::{Client, status_error};
use super::manifest::{
    Descriptor, MANIFEST_ACCEPT, Manifest, choose_platform, layer_compression, parse_manifest,
};
use super::{FetchedImage, FetchedLayer, Progress, ProgressEvent, RegistryError, RegistryOptions};
use crate::image::auth;
use crate::image::blobs::{BlobError, BlobStore, sha256_digest};
use crate::image::reference::{Reference, normalize_registry, registry_api_host};

/// Docker refuses manifests above 4 MiB too.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;
/// Configs are read into memory whole; real ones are a few KiB.
const MAX_CONFIG: u64 = 64 * 1024 * 1024;
/// Report download progress at most this often (in bytes).
const PROGRESS_STEP: u64 = 256 * 1024;

/// Pulls `reference` for `opts.platform` into `blobs` and returns what the image store needs.
pub fn fetch_image(
    reference: &Reference,
    opts: &RegistryOptions,
    blobs: &BlobStore,
    progress: &dyn Progress,
) -> Result<FetchedImage, RegistryError> {
    let creds = auth::lookup(&opts.auth_files, &reference.registry).map_err(RegistryError::Auth)?;
    let client = Client::new(
        &reference.registry,
        reference.api_host(),
        Some(&reference.repository),
        creds,
        opts.insecure,
    );
    client.connect()?;
    let name = reference.familiar();

    let (bytes, content_type) = with_retries(opts, || {
        fetch_manifest(&client, reference, reference.manifest_ref(), &name)
    })?;
    let digest = sha256_digest(&bytes);
    if let Some(expected) = &reference.digest
        && *expected != digest
    {
        return Err(RegistryError::ManifestDigestMismatch {
            reference: name,
            expected: expected.clone(),
            actual: digest,
        });
    }

    let (manifest_digest, manifest, config, layers, index_digest) = match parse_manifest(
        &bytes,
        content_type.as_deref(),
        &name,
    )? {
        Manifest::Image { config, layers } => (digest, bytes, config, layers, None),
        Manifest::Index { manifests } => {
            let chosen = choose_platform(&manifests, &opts.platform).map_err(|available| {
                RegistryError::NoMatchingPlatform {
                    reference: name.clone(),
                    wanted: opts.platform.to_string(),
                    available,
                }
            })?;
            tracing::debug!(reference = %name, platform = %opts.platform, digest = %chosen.digest, "chose manifest from index");
            let (child, child_type) = with_retries(opts, || {
                fetch_manifest(&client, reference, &chosen.digest, &name)
            })?;
            let child_digest = sha256_digest(&child);
            if child_digest != chosen.digest {
                return Err(RegistryError::ManifestDigestMismatch {
                    reference: format!("{name} ({})", opts.platform),
                    expected: chosen.digest.clone(),
                    actual: child_digest,
                });
            }
            match parse_manifest(&child, child_type.as_deref(), &name)? {
                Manifest::Image { config, layers } => {
                    (child_digest, child, config, layers, Some(digest))
                }
                Manifest::Index { .. } => {
                    return Err(RegistryError::InvalidManifest {
                        reference: name,
                        reason: "its index points to another index",
                    });
                }
            }
        }
    };
    progress.event(ProgressEvent::Resolved {
        manifest_digest: manifest_digest.clone(),
    });

    // Refuse unusable layers before downloading anything.
    let fetched_layers = layers
        .iter()
        .map(|l| {
            Ok(FetchedLayer {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                compression: layer_compression(&l.media_type, &l.digest)?,
            })
        })
        .collect::<Result<Vec<_>, RegistryError>>()?;

    if config.size > MAX_CONFIG {
        return Err(RegistryError::InvalidManifest {
            reference: name,
            reason: "its config is larger than 64 MiB",
        });
    }
    if !blobs.has(&config.digest) {
        with_retries(opts, || {
            fetch_blob(&client, blobs, &config, reference, None)
        })?;
    }
    let config_bytes = blobs
        .read(&config.digest)
        .map_err(|source| RegistryError::Store {
            digest: config.digest.clone(),
            source,
        })?;

    fetch_layers(&client, opts, blobs, &layers, reference, progress)?;

    Ok(FetchedImage {
        manifest_digest,
        manifest,
        config_digest: config.digest,
        config: config_bytes,
        layers: fetched_layers,
        index_digest,
    })
}

/// Checks credentials against a registry's `/v2/` (Basic, or the Bearer token flow).
/// Storing them is the caller's business (`auth::store`).
pub fn login(
    registry: &str,
    username: &str,
    password: &str,
    opts: &RegistryOptions,
) -> Result<(), RegistryError> {
    let registry = normalize_registry(registry);
    let client = Client::new(
        &registry,
        registry_api_host(&registry),
        None,
        Some((username.to_string(), password.to_string())),
        opts.insecure,
    );
    client.login()
}

fn fetch_manifest(
    client: &Client,
    reference: &Reference,
    manifest_ref: &str,
    name: &str,
) -> Result<(Vec<u8>, Option<String>), RegistryError> {
    let path = format!("/v2/{}/manifests/{manifest_ref}", reference.repository);
    let mut resp = client.get(&path, Some(MANIFEST_ACCEPT))?;
    match resp.status().as_u16() {
        200..=299 => {}
        404 => {
            return Err(RegistryError::ManifestUnknown {
                reference: if manifest_ref.starts_with("sha256:") && reference.digest.is_none() {
                    format!("{}@{manifest_ref}", reference.familiar_repo())
                } else {
                    name.to_string()
                },
            });
        }
        _ => {
            return Err(status_error(
                &client.registry,
                &format!("the manifest request for {name}"),
                resp,
            ));
        }
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let advertised = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(MAX_MANIFEST)
        .read_to_vec()
        .map_err(|source| match source {
            ureq::Error::BodyExceedsLimit(_) => RegistryError::ManifestTooLarge {
                reference: name.to_string(),
                limit: MAX_MANIFEST,
            },
            source => RegistryError::Read {
                registry: client.registry.clone(),
                what: format!("the manifest of {name}"),
                source,
            },
        })?;
    if let Some(advertised) = advertised {
        let actual = sha256_digest(&bytes);
        if advertised.starts_with("sha256:") && advertised != actual {
            tracing::warn!(reference = %name, %advertised, %actual, "registry's Docker-Content-Digest differs from the manifest received");
        }
    }
    Ok((bytes, content_type))
}

/// Downloads distinct, absent layers with at most `max_parallel` threads. After the first
/// failure no new download starts; the error of the earliest failed layer is returned.
fn fetch_layers(
    client: &Client,
    opts: &RegistryOptions,
    blobs: &BlobStore,
    layers: &[Descriptor],
    reference: &Reference,
    progress: &dyn Progress,
) -> Result<(), RegistryError> {
    let mut todo: Vec<&Descriptor> = Vec::new();
    for layer in layers {
        if todo.iter().any(|d| d.digest == layer.digest) {
            continue;
        }
        if blobs.has(&layer.digest) {
            progress.event(ProgressEvent::LayerExists {
                digest: layer.digest.clone(),
            });
            continue;
        }
        todo.push(layer);
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let errors: Mutex<Vec<(usize, RegistryError)>> = Mutex::new(Vec::new());
    let workers = opts.max_parallel.max(1).min(todo.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(layer) = todo.get(i) else { break };
                    let result = with_retries(opts, || {
                        fetch_blob(client, blobs, layer, reference, Some(progress))
                    });
                    match result {
                        Ok(()) => progress.event(ProgressEvent::LayerDone {
                            digest: layer.digest.clone(),
                        }),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            errors
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((i, e));
                        }
                    }
                }
            });
        }
    });
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    errors.sort_by_key(|(i, _)| *i);
    match errors.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// One attempt at downloading a blob into the store, verified against its digest and size.
fn fetch_blob(
    client: &Client,
    blobs: &BlobStore,
    desc: &Descriptor,
    reference: &Reference,
    progress: Option<&dyn Progress>,
) -> Result<(), RegistryError> {
    let path = format!("/v2/{}/blobs/{}", reference.repository, desc.digest);
    let repo = reference.repo_name();
    let resp = client.get(&path, None)?;
    match resp.status().as_u16() {
        200..=299 => {}
        404 => {
            return Err(RegistryError::BlobUnknown {
                digest: desc.digest.clone(),
                repository: repo.clone(),
            });
        }
        _ => {
            return Err(status_error(
                &client.registry,
                &format!("the request for blob {}", desc.digest),
                resp,
            ));
        }
    }
    if let Some(p) = progress {
        p.event(ProgressEvent::LayerStart {
            digest: desc.digest.clone(),
            size: desc.size,
        });
    }
    // One byte more than announced, so an overlong body fails the digest check.
    let body = resp
        .into_body()
        .into_reader()
        .take(desc.size.saturating_add(1));
    let mut reader = ProgressReader {
        inner: body,
        digest: &desc.digest,
        progress,
        count: 0,
        reported: 0,
    };
    let result = blobs.write(&desc.digest, &mut reader);
    let got = reader.count;
    reader.report();
    match result {
        Ok(n) if n == desc.size => Ok(()),
        Ok(n) => {
            blobs
                .remove(&desc.digest)
                .map_err(|source| RegistryError::Store {
                    digest: desc.digest.clone(),
                    source,
                })?;
            Err(RegistryError::BlobSize {
                digest: desc.digest.clone(),
                repository: repo.clone(),
                expected: desc.size,
                actual: n,
            })
        }
        Err(BlobError::Mismatch { .. }) if got < desc.size => Err(RegistryError::Truncated {
            digest: desc.digest.clone(),
            repository: repo.clone(),
            got,
            expected: desc.size,
        }),
        Err(BlobError::Mismatch { .. }) => Err(RegistryError::BlobMismatch {
            digest: desc.digest.clone(),
            repository: repo.clone(),
        }),
        Err(BlobError::Read { source, .. }) => Err(RegistryError::Stream {
            digest: desc.digest.clone(),
            registry: client.registry.clone(),
            source,
        }),
        Err(source) => Err(RegistryError::Store {
            digest: desc.digest.clone(),
            source,
        }),
    }
}

struct ProgressReader<'a, R> {
    inner: R,
    digest: &'a str,
    progress: Option<&'a dyn Progress>,
    count: u64,
    reported: u64,
}

impl<R> ProgressReader<'_, R> {
    fn report(&mut self) {
        if let Some(p) = self.progress
            && self.count != self.reported
        {
            self.reported = self.count;
            p.event(ProgressEvent::LayerBytes {
                digest: self.digest.to_string(),
                bytes: self.count,
            });
        }
    }
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count - self.reported >= PROGRESS_STEP {
            self.report();
        }
        Ok(n)
    }
}

fn with_retries<T>(
    opts: &RegistryOptions,
    mut attempt: impl FnMut() -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    let mut tries = 0;
    loop {
        match attempt() {
            Err(err) if err.is_transient() && tries < opts.retries => {
                let delay = Duration::from_millis(500 << tries.min(4));
                tries += 1;
                tracing::warn!(%err, attempt = tries, ?delay, "registry request failed; retrying");
                std::thread::sleep(delay);
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_only_transient_errors() {
        let opts = RegistryOptions {
            retries: 2,
            ..RegistryOptions::default()
        };
        let mut calls = 0;
        let r: Result<(), _> = with_retries(&opts, || {
            calls += 1;
            Err(RegistryError::Truncated {
                digest: "d".into(),
                repository: "r".into(),
                got: 1,
                expected: 2,
            })
        });
        assert!(matches!(r, Err(RegistryError::Truncated { .. })));
        assert_eq!(calls, 3);

        let mut calls = 0;
        let r: Result<(), _> = with_retries(&opts, || {
            calls += 1;
            Err(RegistryError::BlobMismatch {
                digest: "d".into(),
                repository: "r".into(),
            })
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);

        let mut calls = 0;
        let r = with_retries(&opts, || {
            calls += 1;
            if calls < 2 {
                Err(RegistryError::Truncated {
                    digest: "d".into(),
                    repository: "r".into(),
                    got: 1,
                    expected: 2,
                })
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 2);
    }

    #[test]
    fn progress_reader_reports_cumulative_bytes() {
        let events = Mutex::new(Vec::new());
        let progress = |ev: ProgressEvent| events.lock().unwrap().push(ev);
        let data = vec![0u8; 600 * 1024];
        let mut r = ProgressReader {
            inner: &data[..],
            digest: "sha256:x",
            progress: Some(&progress),
            count: 0,
            reported: 0,
        };
        io::copy(&mut r, &mut io::sink()).unwrap();
        r.report();
        let bytes: Vec<u64> = events
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                ProgressEvent::LayerBytes { bytes, .. } => *bytes,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(bytes.last(), Some(&(600 * 1024)));
        assert!(bytes.windows(2).all(|w| w[0] < w[1]));
        assert!(bytes.len() >= 3);
    }
}
