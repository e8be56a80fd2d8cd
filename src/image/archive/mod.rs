//! Image archives, both ways and always streaming: `docker save`'s docker-archive and the
//! OCI image layout in a tar (oci-archive).
//!
//! [`save`] writes either form from blobs in the store:
//! - docker-archive as Docker 20.10 writes it: `<v1-id>/{VERSION,json,layer.tar}` per layer
//!   (uncompressed: a layer stored compressed is decompressed twice, once to learn its size
//!   for the tar header and check it against its diff id, once to write it; a layer already
//!   in the archive under another v1 id is a symlink to it, as Docker does),
//!   `<config-hex>.json`, `manifest.json` and `repositories`;
//! - oci-archive as skopeo and podman write it: `oci-layout`, `blobs/sha256/<hex>` (layers as
//!   stored, compressed or not), an OCI manifest per image and `index.json` naming each tag in
//!   `org.opencontainers.image.ref.name` (podman's full name) and `io.containerd.image.name`
//!   (what Docker 25+ reads).
//!
//! [`load`] reads any of them, and Docker 25+'s docker-archive (an OCI layout plus
//! `manifest.json`; `manifest.json` is followed, as `docker load` does), from any reader,
//! plain or gzip- or zstd-compressed (the magic decides). Every file entry goes straight into
//! the blob store as it streams by, hashed on the way (and, when it is gzip or zstd, also
//! decompressed and hashed, so a compressed layer's diff id is known without a second
//! read); only small metadata files are kept in memory. Once the stream has ended the
//! manifests are resolved against what arrived and checked: names inside the archive,
//! digests, sizes, diff ids. The archive is hostile input: names that climb out or are
//! absolute, links that lead out, entries that are neither files, directories nor links,
//! duplicates, truncation, digests that do not match and manifests naming absent files each
//! fail the load with one line, and a failed load removes every blob it added (no temporary
//! file survives either).
//!
//! Layers of a docker-archive are stored as they come, uncompressed: their digest then is
//! their diff id, checked against the config without a second pass, and saving them again
//! gives back the same bytes (`docker save | burrow load`, then `burrow save`, round-trips).
//! The price is disk (an uncompressed copy beside the unpacked layer, as pulled images keep
//! their compressed one); `push` compresses on the way out.
//!
//! For the engine: a [`LoadedImage`] carries what `pull` records. Its config digest is the
//! image id; each [`LoadedLayer`] gives a `LayerRecord` (digest, diff id, size, media type;
//! chain ids from `storage::chain_ids` over [`LoadedImage::diff_ids`]) and the compression
//! to unpack its blob with; `repo_tags` are full names for `state::set_tag`. Loads (like
//! pulls) should run under the image store's lock: a failed load removes the blobs it
//! added, which a concurrent load of the same blobs may have counted on. [`save`] takes
//! [`SaveImage`]s made from `ImageRecord`s the same way round.

#![allow(dead_code)] // until the engine's save, load, import and export land

use std::io;

use serde::{Deserialize, Serialize};

use crate::image::Compression;
use crate::image::blobs::BlobError;
use crate::image::reference::{Reference, ReferenceError};
use crate::image::registry::Platform;
use crate::image::registry::manifest::{
    DOCKER_CONFIG, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
    layer_compression,
};

mod load;
mod names;
mod resolve;
mod save;

#[allow(unused_imports)] // until the engine's save and load land
pub use load::load;
#[allow(unused_imports)] // until the engine's save and load land
pub use save::save;

#[cfg(test)]
mod tests;

/// Which kind of archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchiveFormat {
    /// `docker save`'s format (`manifest.json`).
    Docker,
    /// An OCI image layout in a tar (`index.json`, `oci-layout`).
    Oci,
}

/// A layer of an image to save, as the image store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveLayer {
    /// The stored blob.
    pub digest: String,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// The blob's media type (OCI or Docker spelling); it gives the compression.
    pub media_type: String,
}

/// One image to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveImage {
    /// The config blob's digest (the image id).
    pub config_digest: String,
    /// Bottom-most first, as in the config's `rootfs.diff_ids`.
    pub layers: Vec<SaveLayer>,
    /// Names to record (`busybox:latest`, `docker.io/library/busybox:latest`); each must
    /// have a tag.
    pub repo_tags: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Chooses the manifest when an oci-archive names an index of several platforms.
    pub platform: Platform,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            platform: Platform::host(),
        }
    }
}

/// A layer of a loaded image: its blob is in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedLayer {
    pub digest: String,
    /// Checked against the config while loading.
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
    pub compression: Compression,
}

/// An image an archive held, with its config, manifest and layers in the blob store. The
/// engine records it the way `pull` records a fetched image (config digest = image id,
/// layers with their diff ids, tags).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedImage {
    pub format: ArchiveFormat,
    /// The image manifest: the archive's own (oci-archive) or one made for the image
    /// (docker-archive has none), stored in the blob store in both cases.
    pub manifest: oci_spec::image::ImageManifest,
    pub manifest_digest: String,
    pub config_digest: String,
    pub config: Vec<u8>,
    /// Bottom-most first.
    pub layers: Vec<LoadedLayer>,
    /// Fully qualified names with tags (`docker.io/library/busybox:latest`).
    pub repo_tags: Vec<String>,
    /// An oci-archive's `org.opencontainers.image.ref.name` when it is a bare tag, not a
    /// name (`latest`): the image then has no name of its own.
    pub ref_name: Option<String>,
}

impl LoadedImage {
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read the archive")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("the archive is truncated: {what} (was the transfer cut short?)")]
    Truncated { what: String },
    #[error("refusing the archive: entry \"{entry}\" {reason}")]
    Hostile { entry: String, reason: &'static str },
    #[error("refusing the archive: link \"{entry}\" points at \"{target}\", {reason}")]
    BadLink {
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error("refusing the archive: \"{entry}\" appears twice")]
    Duplicate { entry: String },
    #[error("refusing the archive: \"{entry}\" is larger than {limit} bytes")]
    TooLarge { entry: String, limit: u64 },
    #[error("refusing the archive: \"{entry}\" hashes to {actual}, not {expected}")]
    DigestMismatch {
        entry: String,
        expected: String,
        actual: String,
    },
    #[error("refusing the archive: \"{entry}\" is {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        entry: String,
        expected: u64,
        actual: u64,
    },
    #[error("the archive's {what} names \"{name}\", which the archive does not contain")]
    Missing { what: String, name: String },
    #[error(
        "not an image archive: it has neither manifest.json (docker-archive) nor index.json (oci-archive)"
    )]
    NotAnArchive,
    #[error("cannot parse {entry} in the archive")]
    BadJson {
        entry: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the archive's {entry} is not usable: {reason}")]
    Invalid { entry: String, reason: String },
    #[error(
        "image {image}: layer {layer} is {actual} once uncompressed, but the config says {expected}"
    )]
    DiffIdMismatch {
        image: String,
        layer: String,
        expected: String,
        actual: String,
    },
    #[error("image {image} has {layers} layers but its config lists {diff_ids} diff ids")]
    LayerCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("the archive tags an image \"{tag}\"")]
    BadTag {
        tag: String,
        #[source]
        source: ReferenceError,
    },
    #[error("cannot save the name \"{tag}\": it has no tag (give name:tag)")]
    Untagged { tag: String },
    #[error("the archive's index has no image for {wanted} (it has: {available})")]
    NoPlatform { wanted: String, available: String },
    #[error("image {image}: layer {layer} has media type {media_type}, which burrow cannot store")]
    Unsupported {
        image: String,
        layer: String,
        media_type: String,
    },
    #[error("cannot store \"{entry}\" of the archive in the blob store")]
    WriteBlob {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot store blobs from the archive")]
    Store {
        #[source]
        source: BlobError,
    },
    #[error(
        "cannot save image {image}: blob {digest} is not in the store (pull or load the image again)"
    )]
    MissingBlob { image: String, digest: String },
    #[error(
        "cannot save image {image}: layer {digest} decompresses to {actual}, not its diff id {expected} (remove the image and pull it again)"
    )]
    CorruptLayer {
        image: String,
        digest: String,
        expected: String,
        actual: String,
    },
    #[error("cannot read blob {digest} from the store")]
    ReadBlob {
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the archive")]
    Write {
        #[source]
        source: io::Error,
    },
}

/// Normalises a name to save or record: `busybox:latest` → `docker.io/library/busybox:latest`.
fn tagged(name: &str) -> Result<Reference, ArchiveError> {
    let r = Reference::parse(name).map_err(|source| ArchiveError::BadTag {
        tag: name.to_owned(),
        source,
    })?;
    if r.tag.is_none() || r.digest.is_some() {
        return Err(ArchiveError::Untagged {
            tag: name.to_owned(),
        });
    }
    Ok(r)
}

/// The compression a layer media type says, OCI or Docker spelling.
fn media_compression(media_type: &str) -> Option<Compression> {
    layer_compression(media_type, "").ok()
}

/// The OCI media type for a layer of that compression.
fn oci_layer_type(compression: Compression) -> &'static str {
    crate::image::pack::layer_media_type(compression)
}

/// containerd's (and Docker 25+'s) annotation for an image's full name.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Serialises JSON with sorted keys (serde_json's map is a BTreeMap here), so archives of
/// the same images are the same bytes.
fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("archive metadata serialises");
    serde_json::to_vec(&value).expect("JSON values serialise")
}
