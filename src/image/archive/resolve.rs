//! Making images of what an archive held: `manifest.json` (docker-archive, both forms)
//! or `index.json` (oci-archive), every name checked against the archive's contents and
//! every layer against its config's diff id.

use std::str::FromStr;

use oci_spec::image::{
    Descriptor, DescriptorBuilder, Digest, ImageIndex, ImageManifest, ImageManifestBuilder,
    MediaType,
};
use serde::Deserialize;

use super::load::{Contents, Item, Session, Stored, layout_digest};
use super::names::follow;
use super::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ArchiveError, ArchiveFormat, DOCKER_CONFIG,
    DOCKER_LIST, DOCKER_MANIFEST, LoadOptions, LoadedImage, LoadedLayer, OCI_CONFIG, OCI_INDEX,
    OCI_MANIFEST, canonical_json, layer_compression, oci_layer_type, tagged,
};
use crate::image::Compression;
use crate::image::registry::Platform;

/// Configs are read whole; real ones are a few KiB.
const MAX_CONFIG: u64 = 64 * 1024 * 1024;
/// As for pulled manifests.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

#[derive(Deserialize)]
struct DockerItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct ConfigHead {
    rootfs: RootFs,
}

pub(super) fn images(
    session: &mut Session<'_>,
    contents: &Contents,
    opts: &LoadOptions,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let r = Resolver { session, contents };
    if let Some(manifest) = meta(contents, "manifest.json") {
        return r.docker(manifest);
    }
    if let Some(index) = meta(contents, "index.json") {
        return r.oci(index, opts);
    }
    Err(ArchiveError::NotAnArchive)
}

fn lookup<'c>(contents: &'c Contents, name: &str) -> Option<&'c Item> {
    let name = super::names::entry_name(name.as_bytes()).ok()??;
    let name = follow(&contents.links, &name)?;
    contents.items.get(name)
}

fn meta<'c>(contents: &'c Contents, name: &str) -> Option<&'c [u8]> {
    match lookup(contents, name) {
        Some(Item::Meta(data)) => Some(data),
        _ => None,
    }
}

struct Resolver<'s, 'a> {
    session: &'s mut Session<'a>,
    contents: &'s Contents,
}

fn bad_json(entry: &str) -> impl FnOnce(serde_json::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::BadJson {
        entry: entry.to_owned(),
        source,
    }
}

fn invalid(entry: &str, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid {
        entry: entry.to_owned(),
        reason: reason.into(),
    }
}

/// `sha256:<hex>` when an entry is named by its digest (`<hex>.json`, `blobs/sha256/<hex>`,
/// skopeo's `<hex>.tar`).
fn named_digest(name: &str) -> Option<String> {
    if let Some(d) = layout_digest(name) {
        return Some(d);
    }
    let hex = name
        .strip_suffix(".json")
        .or_else(|| name.strip_suffix(".tar"))?;
    let digest = format!("sha256:{hex}");
    crate::image::blobs::digest_hex(&digest).ok()?;
    Some(digest)
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> Result<Descriptor, ArchiveError> {
    let digest = Digest::from_str(digest).map_err(|e| invalid(digest, e.to_string()))?;
    DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .digest(digest)
        .size(size)
        .build()
        .map_err(|e| invalid("manifest", e.to_string()))
}

impl Resolver<'_, '_> {
    fn item(&self, name: &str) -> Option<&Item> {
        lookup(self.contents, name)
    }

    /// The stored file `name` that `what` refers to.
    fn blob(&self, what: &str, name: &str) -> Result<&Stored, ArchiveError> {
        match self.item(name) {
            Some(Item::Blob(stored)) => Ok(stored),
            _ => Err(ArchiveError::Missing {
                what: what.to_owned(),
                name: name.to_owned(),
            }),
        }
    }

    /// The blob a descriptor names, checked for its size.
    fn described(&self, what: &str, d: &Descriptor) -> Result<&Stored, ArchiveError> {
        let name = format!("blobs/{}/{}", d.digest().algorithm(), d.digest().digest());
        let stored = self.blob(what, &name)?;
        if stored.size != d.size() {
            return Err(ArchiveError::SizeMismatch {
                entry: name,
                expected: d.size(),
                actual: stored.size,
            });
        }
        Ok(stored)
    }

    fn read(&self, entry: &str, stored: &Stored, limit: u64) -> Result<Vec<u8>, ArchiveError> {
        if stored.size > limit {
            return Err(ArchiveError::TooLarge {
                entry: entry.to_owned(),
                limit,
            });
        }
        self.session
            .blobs
            .read(&stored.digest)
            .map_err(|source| ArchiveError::Store { source })
    }

    fn diff_ids(&self, entry: &str, config: &[u8]) -> Result<Vec<String>, ArchiveError> {
        let head: ConfigHead = serde_json::from_slice(config).map_err(bad_json(entry))?;
        Ok(head.rootfs.diff_ids)
    }

    /// Checks a layer's uncompressed digest against the config's diff id.
    fn check_layer(
        image: &str,
        layer: &str,
        stored: &Stored,
        declared: Compression,
        diff_id: &str,
    ) -> Result<(), ArchiveError> {
        let actual = match declared {
            Compression::None => Some(stored.digest.clone()),
            c if c == stored.compression => stored.uncompressed_digest.clone(),
            _ => None,
        };
        if actual.as_deref() != Some(diff_id) {
            return Err(ArchiveError::DiffIdMismatch {
                image: image.to_owned(),
                layer: layer.to_owned(),
                expected: diff_id.to_owned(),
                actual: actual.unwrap_or_else(|| "not a valid compressed stream".into()),
            });
        }
        Ok(())
    }

    fn store_json(&mut self, bytes: &[u8]) -> Result<String, ArchiveError> {
        let digest = crate::image::blobs::sha256_digest(bytes);
        let existed = self.session.blobs.has(&digest);
        self.session
            .blobs
            .write(&digest, bytes)
            .map_err(|source| ArchiveError::Store { source })?;
        if !existed {
            self.session.added.push(digest.clone());
        }
        Ok(digest)
    }

    fn docker(mut self, manifest: &[u8]) -> Result<Vec<LoadedImage>, ArchiveError> {
        let items: Vec<DockerItem> =
            serde_json::from_slice(manifest).map_err(bad_json("manifest.json"))?;
        let mut out: Vec<LoadedImage> = Vec::new();
        for item in items {
            let what = "manifest.json";
            let config = self.blob(what, &item.config)?.clone();
            if let Some(expected) = named_digest(&item.config)
                && expected != config.digest
            {
                return Err(ArchiveError::DigestMismatch {
                    entry: item.config.clone(),
                    expected,
                    actual: config.digest,
                });
            }
            let config_bytes = self.read(&item.config, &config, MAX_CONFIG)?;
            let diff_ids = self.diff_ids(&item.config, &config_bytes)?;
            let image = config.digest.clone();
            if diff_ids.len() != item.layers.len() {
                return Err(ArchiveError::LayerCount {
                    image,
                    layers: item.layers.len(),
                    diff_ids: diff_ids.len(),
                });
            }
            let mut layers = Vec::new();
            for (name, diff_id) in item.layers.iter().zip(&diff_ids) {
                let stored = self.blob(what, name)?;
                let compression = stored.compression;
                // docker load takes compressed layer files too.
                Self::check_layer(&image, name, stored, compression, diff_id)?;
                layers.push(LoadedLayer {
                    digest: stored.digest.clone(),
                    diff_id: diff_id.clone(),
                    size: stored.size,
                    media_type: oci_layer_type(compression).to_owned(),
                    compression,
                });
            }
            let manifest = make_manifest(&config, &layers)?;
            let manifest_digest = self.store_json(&canonical_json(&manifest))?;
            let mut repo_tags = Vec::new();
            for tag in item.repo_tags.unwrap_or_default() {
                let full = tagged(&tag)?.tagged_name().unwrap_or(tag);
                if !repo_tags.contains(&full) {
                    repo_tags.push(full);
                }
            }
            merge(
                &mut out,
                LoadedImage {
                    format: ArchiveFormat::Docker,
                    manifest,
                    manifest_digest,
                    config_digest: config.digest,
                    config: config_bytes,
                    layers,
                    repo_tags,
                    ref_name: None,
                },
            );
        }
        Ok(out)
    }

    fn oci(self, index: &[u8], opts: &LoadOptions) -> Result<Vec<LoadedImage>, ArchiveError> {
        if meta(self.contents, "oci-layout").is_none() {
            return Err(invalid(
                "oci-layout",
                "it is missing, so index.json is not an OCI image layout's",
            ));
        }
        let index: ImageIndex = serde_json::from_slice(index).map_err(bad_json("index.json"))?;
        let mut out: Vec<LoadedImage> = Vec::new();
        for d in index.manifests() {
            let Some(chosen) = self.choose("index.json", d, opts)? else {
                tracing::debug!(digest = %d.digest(), media_type = ?d.media_type(), "skipping an index entry that is not an image");
                continue;
            };
            let mut image = self.oci_image(&chosen)?;
            let annotations = d.annotations().clone().unwrap_or_default();
            let full = annotations.get(ANNOTATION_IMAGE_NAME);
            let short = annotations.get(ANNOTATION_REF_NAME);
            match (full, short) {
                (Some(name), _) => image.repo_tags.push(tagged_name(name)?),
                (None, Some(name)) if name.contains([':', '/']) => {
                    image.repo_tags.push(tagged_name(name)?);
                }
                (None, Some(name)) => image.ref_name = Some(name.clone()),
                (None, None) => {}
            }
            merge(&mut out, image);
        }
        Ok(out)
    }

    /// The image manifest an index entry leads to: itself, or the one for the wanted
    /// platform when it is an index. `None` for entries that are not images.
    fn choose(
        &self,
        what: &str,
        d: &Descriptor,
        opts: &LoadOptions,
    ) -> Result<Option<Descriptor>, ArchiveError> {
        let media_type = d.media_type().to_string();
        if media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST {
            return Ok(Some(d.clone()));
        }
        if media_type != OCI_INDEX && media_type != DOCKER_LIST {
            return Ok(None);
        }
        let stored = self.described(what, d)?;
        let name = format!("blobs/{}/{}", d.digest().algorithm(), d.digest().digest());
        let bytes = self.read(&name, stored, MAX_MANIFEST)?;
        let nested: ImageIndex = serde_json::from_slice(&bytes).map_err(bad_json(&name))?;
        let wanted = Platform::normalized(
            &opts.platform.os,
            &opts.platform.architecture,
            opts.platform.variant.as_deref(),
        );
        let mut available = Vec::new();
        let mut fallback = None;
        for m in nested.manifests() {
            let Some(p) = m.platform() else { continue };
            let have = Platform::normalized(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            );
            available.push(have.to_string());
            if have.os != wanted.os || have.architecture != wanted.architecture {
                continue;
            }
            if have.variant == wanted.variant {
                return self.choose(&name, m, opts);
            }
            if wanted.variant.is_none() && fallback.is_none() {
                fallback = Some(m);
            }
        }
        match fallback {
            Some(m) => self.choose(&name, m, opts),
            None => Err(ArchiveError::NoPlatform {
                wanted: wanted.to_string(),
                available: available.join(", "),
            }),
        }
    }

    fn oci_image(&self, d: &Descriptor) -> Result<LoadedImage, ArchiveError> {
        let name = format!("blobs/{}/{}", d.digest().algorithm(), d.digest().digest());
        let stored = self.described("index.json", d)?;
        let bytes = self.read(&name, stored, MAX_MANIFEST)?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(bad_json(&name))?;
        let config_type = manifest.config().media_type().to_string();
        if config_type != OCI_CONFIG && config_type != DOCKER_CONFIG {
            return Err(invalid(
                &name,
                format!("its config has media type {config_type}, not an image config"),
            ));
        }
        let config = self.described(&name, manifest.config())?;
        let config_name = manifest.config().digest().to_string();
        let config_bytes = self.read(&config_name, config, MAX_CONFIG)?;
        let diff_ids = self.diff_ids(&config_name, &config_bytes)?;
        let image = config.digest.clone();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ArchiveError::LayerCount {
                image,
                layers: manifest.layers().len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut layers = Vec::new();
        for (l, diff_id) in manifest.layers().iter().zip(&diff_ids) {
            let media_type = l.media_type().to_string();
            let digest = l.digest().to_string();
            let compression =
                layer_compression(&media_type, &digest).map_err(|_| ArchiveError::Unsupported {
                    image: image.clone(),
                    layer: digest.clone(),
                    media_type: media_type.clone(),
                })?;
            let stored = self.described(&name, l)?;
            Self::check_layer(&image, &digest, stored, compression, diff_id)?;
            layers.push(LoadedLayer {
                digest,
                diff_id: diff_id.clone(),
                size: stored.size,
                media_type,
                compression,
            });
        }
        Ok(LoadedImage {
            format: ArchiveFormat::Oci,
            manifest,
            manifest_digest: stored.digest.clone(),
            config_digest: config.digest.clone(),
            config: config_bytes,
            layers,
            repo_tags: Vec::new(),
            ref_name: None,
        })
    }
}

fn tagged_name(name: &str) -> Result<String, ArchiveError> {
    let r = tagged(name)?;
    Ok(r.tagged_name().unwrap_or_else(|| name.to_owned()))
}

/// The OCI manifest of a docker-archive image (which has none of its own).
fn make_manifest(config: &Stored, layers: &[LoadedLayer]) -> Result<ImageManifest, ArchiveError> {
    let layer_descs = layers
        .iter()
        .map(|l| descriptor(&l.media_type, &l.digest, l.size))
        .collect::<Result<Vec<_>, _>>()?;
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(OCI_CONFIG, &config.digest, config.size)?)
        .layers(layer_descs)
        .build()
        .map_err(|e| invalid("manifest", e.to_string()))
}

/// Adds an image, or its names to the same image already there.
fn merge(out: &mut Vec<LoadedImage>, image: LoadedImage) {
    match out
        .iter_mut()
        .find(|i| i.manifest_digest == image.manifest_digest)
    {
        Some(existing) => {
            for tag in image.repo_tags {
                if !existing.repo_tags.contains(&tag) {
                    existing.repo_tags.push(tag);
                }
            }
            if existing.ref_name.is_none() {
                existing.ref_name = image.ref_name;
            }
        }
        None => out.push(image),
    }
}
