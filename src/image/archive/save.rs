//! Writing archives (see the module documentation for the two forms).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tar::EntryType;

use super::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ArchiveError, ArchiveFormat, OCI_CONFIG, OCI_INDEX,
    OCI_MANIFEST, SaveImage, SaveLayer, canonical_json, media_compression, oci_layer_type, tagged,
};
use crate::image::Compression;
use crate::image::blobs::BlobStore;
use crate::image::reference::Reference;
use crate::image::tarwrite::{self, CopyError, HashWriter, TarHeader};

/// Every entry gets this mtime, so the same images give the same archive.
const MTIME: i64 = 0;
const EPOCH: &str = "1970-01-01T00:00:00Z";
const BUFFER: usize = 256 * 1024;

/// Writes `images` as an archive of `format` to `out`. Everything is checked first
/// (blobs present, names tagged, compressed layers decompressing to their diff ids), so a
/// missing or corrupt blob fails before the first byte is written.
pub fn save(
    blobs: &BlobStore,
    images: &[SaveImage],
    format: ArchiveFormat,
    out: &mut dyn Write,
) -> Result<(), ArchiveError> {
    let _span = tracing::debug_span!("save", ?format, images = images.len()).entered();
    let plan = Plan::new(blobs, images, format)?;
    let mut w = BufWriter::with_capacity(BUFFER, out);
    let mut writer = Writer { blobs, out: &mut w };
    match format {
        ArchiveFormat::Docker => writer.docker(&plan)?,
        ArchiveFormat::Oci => writer.oci(&plan)?,
    }
    tarwrite::write_end(&mut w).map_err(write_err)?;
    w.flush().map_err(write_err)
}

fn write_err(source: io::Error) -> ArchiveError {
    ArchiveError::Write { source }
}

/// One layer as it will be written.
struct PlannedLayer {
    layer: SaveLayer,
    compression: Compression,
    /// Bytes of the stored blob.
    blob_size: u64,
    /// Bytes of the uncompressed tar (docker-archive only: it needs them for the header).
    tar_size: u64,
}

struct PlannedImage<'a> {
    image: &'a SaveImage,
    config: Vec<u8>,
    layers: Vec<PlannedLayer>,
    tags: Vec<Reference>,
}

struct Plan<'a> {
    images: Vec<PlannedImage<'a>>,
}

impl<'a> Plan<'a> {
    fn new(
        blobs: &BlobStore,
        images: &'a [SaveImage],
        format: ArchiveFormat,
    ) -> Result<Plan<'a>, ArchiveError> {
        let mut out = Vec::new();
        // Uncompressed sizes already learned and checked (a layer shared by images).
        let mut sizes: HashMap<(String, String), u64> = HashMap::new();
        for image in images {
            let id = &image.config_digest;
            let missing = |digest: &str| ArchiveError::MissingBlob {
                image: id.clone(),
                digest: digest.to_owned(),
            };
            if !blobs.has(id) {
                return Err(missing(id));
            }
            let config = blobs
                .read(id)
                .map_err(|source| ArchiveError::Store { source })?;
            let mut tags: Vec<Reference> = Vec::new();
            for name in &image.repo_tags {
                let r = tagged(name)?;
                if !tags.contains(&r) {
                    tags.push(r);
                }
            }
            let mut layers = Vec::new();
            for layer in &image.layers {
                let compression = media_compression(&layer.media_type).ok_or_else(|| {
                    ArchiveError::Unsupported {
                        image: id.clone(),
                        layer: layer.digest.clone(),
                        media_type: layer.media_type.clone(),
                    }
                })?;
                let blob_size = std::fs::metadata(blobs.path(&layer.digest))
                    .map_err(|_| missing(&layer.digest))?
                    .len();
                let tar_size = match (format, compression) {
                    (ArchiveFormat::Oci, _) | (_, Compression::None) => blob_size,
                    _ => {
                        let key = (layer.digest.clone(), layer.diff_id.clone());
                        match sizes.get(&key) {
                            Some(&n) => n,
                            None => {
                                let n = uncompressed_size(blobs, id, layer, compression)?;
                                sizes.insert(key, n);
                                n
                            }
                        }
                    }
                };
                layers.push(PlannedLayer {
                    layer: layer.clone(),
                    compression,
                    blob_size,
                    tar_size,
                });
            }
            out.push(PlannedImage {
                image,
                config,
                layers,
                tags,
            });
        }
        Ok(Plan { images: out })
    }
}

fn open_blob(blobs: &BlobStore, image: &str, digest: &str) -> Result<File, ArchiveError> {
    blobs.open(digest).map_err(|_| ArchiveError::MissingBlob {
        image: image.to_owned(),
        digest: digest.to_owned(),
    })
}

fn decoder(
    file: File,
    compression: Compression,
    digest: &str,
) -> Result<Box<dyn Read>, ArchiveError> {
    let file = BufReader::with_capacity(BUFFER, file);
    Ok(match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(
            |source| ArchiveError::ReadBlob {
                digest: digest.to_owned(),
                source,
            },
        )?),
    })
}

/// Decompresses a layer once to learn its size, checking it against its diff id.
fn uncompressed_size(
    blobs: &BlobStore,
    image: &str,
    layer: &SaveLayer,
    compression: Compression,
) -> Result<u64, ArchiveError> {
    let file = open_blob(blobs, image, &layer.digest)?;
    let mut reader = decoder(file, compression, &layer.digest)?;
    let mut hashed = HashWriter::new(io::sink());
    io::copy(&mut reader, &mut hashed).map_err(|source| ArchiveError::ReadBlob {
        digest: layer.digest.clone(),
        source,
    })?;
    let (actual, size, _) = hashed.finish();
    if actual != layer.diff_id {
        return Err(ArchiveError::CorruptLayer {
            image: image.to_owned(),
            digest: layer.digest.clone(),
            expected: layer.diff_id.clone(),
            actual,
        });
    }
    Ok(size)
}

/// Hashes what is read through it (the content written, without the tar padding).
struct HashReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// `manifest.json` of a docker-archive, fields in Docker's order.
#[derive(Serialize)]
struct DockerItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Docker's legacy per-layer ids: derived from the chain id and the parent's id, so the
/// same layer stack gets the same ids in every archive.
fn v1_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for chain_id in crate::storage::chain_ids(diff_ids) {
        let mut fields = BTreeMap::new();
        fields.insert("created", EPOCH.to_owned());
        fields.insert("layer_id", chain_id);
        if let Some(parent) = out.last() {
            fields.insert("parent", format!("sha256:{parent}"));
        }
        out.push(hex::encode(Sha256::digest(canonical_json(&fields))));
    }
    out
}

/// A layer's legacy `json`: its ids, and for the top layer the image's platform and run
/// config, as Docker 20.10 writes them (loaders read `manifest.json`, not these).
fn v1_json(id: &str, parent: Option<&String>, top_config: Option<&[u8]>) -> Vec<u8> {
    let mut v = serde_json::Map::new();
    v.insert("id".into(), id.into());
    if let Some(p) = parent {
        v.insert("parent".into(), p.as_str().into());
    }
    v.insert("created".into(), EPOCH.into());
    let config: Option<serde_json::Value> = top_config.and_then(|c| serde_json::from_slice(c).ok());
    if let Some(serde_json::Value::Object(c)) = config {
        for key in [
            "architecture",
            "os",
            "variant",
            "created",
            "config",
            "author",
            "comment",
        ] {
            if let Some(value) = c.get(key) {
                v.insert(key.into(), value.clone());
            }
        }
    }
    canonical_json(&v)
}

struct Writer<'a, 'w> {
    blobs: &'a BlobStore,
    out: &'w mut dyn Write,
}

impl Writer<'_, '_> {
    fn dir(&mut self, name: &str) -> Result<(), ArchiveError> {
        let mut h = TarHeader::new(format!("{name}/").into_bytes(), EntryType::Directory);
        h.mode = 0o755;
        h.mtime = MTIME;
        tarwrite::write_header(self.out, &h).map_err(write_err)
    }

    fn bytes(&mut self, name: &str, data: &[u8]) -> Result<(), ArchiveError> {
        tarwrite::write_bytes(self.out, name.as_bytes(), MTIME, data).map_err(write_err)
    }

    /// Writes a stored blob under `name`, uncompressed when `decompress`, checking what
    /// goes out against `expected` (the blob's digest, or the layer's diff id).
    fn blob(
        &mut self,
        image: &str,
        name: &str,
        layer_digest: &str,
        compression: Compression,
        size: u64,
        expected: &str,
    ) -> Result<(), ArchiveError> {
        let file = open_blob(self.blobs, image, layer_digest)?;
        let reader = decoder(file, compression, layer_digest)?;
        let mut h = TarHeader::new(name.as_bytes().to_vec(), EntryType::Regular);
        h.size = size;
        h.mtime = MTIME;
        tarwrite::write_header(self.out, &h).map_err(write_err)?;
        let mut hashed = HashReader {
            inner: reader,
            hasher: Sha256::new(),
        };
        let corrupt = |actual: String| ArchiveError::CorruptLayer {
            image: image.to_owned(),
            digest: layer_digest.to_owned(),
            expected: expected.to_owned(),
            actual,
        };
        match tarwrite::copy_content(&mut hashed, self.out, size) {
            Ok(()) => {}
            Err(CopyError::Length) => return Err(corrupt("a stream of another length".into())),
            Err(CopyError::Read(source)) => {
                return Err(ArchiveError::ReadBlob {
                    digest: layer_digest.to_owned(),
                    source,
                });
            }
            Err(CopyError::Write(source)) => return Err(write_err(source)),
        }
        let actual = format!("sha256:{}", hex::encode(hashed.hasher.finalize()));
        if actual != expected {
            return Err(corrupt(actual));
        }
        Ok(())
    }

    fn docker(&mut self, plan: &Plan<'_>) -> Result<(), ArchiveError> {
        let mut written_ids: HashSet<String> = HashSet::new();
        let mut tar_of_diff: HashMap<String, String> = HashMap::new();
        let mut configs: HashSet<String> = HashSet::new();
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for p in &plan.images {
            let id = &p.image.config_digest;
            let diff_ids: Vec<String> = p.layers.iter().map(|l| l.layer.diff_id.clone()).collect();
            let ids = v1_ids(&diff_ids);
            for (i, (layer, v1)) in p.layers.iter().zip(&ids).enumerate() {
                if !written_ids.insert(v1.clone()) {
                    continue;
                }
                let parent = i.checked_sub(1).map(|j| &ids[j]);
                let top = (i + 1 == ids.len()).then_some(p.config.as_slice());
                self.dir(v1)?;
                self.bytes(&format!("{v1}/VERSION"), b"1.0")?;
                self.bytes(&format!("{v1}/json"), &v1_json(v1, parent, top))?;
                let tar_name = format!("{v1}/layer.tar");
                match tar_of_diff.get(&layer.layer.diff_id) {
                    Some(first) => {
                        // The same content under another id: Docker links to the first.
                        let mut h = TarHeader::new(tar_name.into_bytes(), EntryType::Symlink);
                        h.mode = 0o777;
                        h.link = format!("../{first}").into_bytes();
                        tarwrite::write_header(self.out, &h).map_err(write_err)?;
                    }
                    None => {
                        self.blob(
                            id,
                            &tar_name,
                            &layer.layer.digest,
                            layer.compression,
                            layer.tar_size,
                            &layer.layer.diff_id,
                        )?;
                        tar_of_diff.insert(layer.layer.diff_id.clone(), tar_name);
                    }
                }
            }
            let hex = id.strip_prefix("sha256:").unwrap_or(id);
            let config_name = format!("{hex}.json");
            if configs.insert(config_name.clone()) {
                self.bytes(&config_name, &p.config)?;
            }
            let mut repo_tags = Vec::new();
            for r in &p.tags {
                let tag = r.tag.clone().unwrap_or_default();
                repo_tags.push(format!("{}:{tag}", r.familiar_repo()));
                if let Some(top) = ids.last() {
                    repositories
                        .entry(r.familiar_repo())
                        .or_default()
                        .insert(tag, top.clone());
                }
            }
            manifest.push(DockerItem {
                config: config_name,
                repo_tags: (!repo_tags.is_empty()).then_some(repo_tags),
                layers: ids.iter().map(|v| format!("{v}/layer.tar")).collect(),
            });
        }
        let manifest = serde_json::to_vec(&manifest).map_err(|e| write_err(e.into()))?;
        self.bytes("manifest.json", &manifest)?;
        if !repositories.is_empty() {
            self.bytes("repositories", &canonical_json(&repositories))?;
        }
        Ok(())
    }

    fn oci(&mut self, plan: &Plan<'_>) -> Result<(), ArchiveError> {
        self.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        self.dir("blobs")?;
        self.dir("blobs/sha256")?;
        let mut written: HashSet<String> = HashSet::new();
        let mut index_entries = Vec::new();
        for p in &plan.images {
            let id = &p.image.config_digest;
            let mut layer_descs = Vec::new();
            for layer in &p.layers {
                let digest = &layer.layer.digest;
                if written.insert(digest.clone()) {
                    let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
                    self.blob(
                        id,
                        &name,
                        digest,
                        Compression::None,
                        layer.blob_size,
                        digest,
                    )?;
                }
                layer_descs.push(serde_json::json!({
                    "mediaType": oci_layer_type(layer.compression),
                    "digest": digest,
                    "size": layer.blob_size,
                }));
            }
            if written.insert(id.clone()) {
                let name = format!("blobs/sha256/{}", id.trim_start_matches("sha256:"));
                self.bytes(&name, &p.config)?;
            }
            let manifest = canonical_json(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": id,
                    "size": p.config.len(),
                },
                "layers": layer_descs,
            }));
            let manifest_digest = crate::image::blobs::sha256_digest(&manifest);
            if written.insert(manifest_digest.clone()) {
                let name = format!(
                    "blobs/sha256/{}",
                    manifest_digest.trim_start_matches("sha256:")
                );
                self.bytes(&name, &manifest)?;
            }
            let desc = |annotations: Option<serde_json::Value>| {
                let mut d = serde_json::json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": manifest_digest,
                    "size": manifest.len(),
                });
                if let Some(a) = annotations {
                    d["annotations"] = a;
                }
                d
            };
            if p.tags.is_empty() {
                index_entries.push(desc(None));
            }
            for r in &p.tags {
                let full = r.tagged_name().unwrap_or_default();
                let mut annotations = serde_json::Map::new();
                annotations.insert(ANNOTATION_IMAGE_NAME.into(), full.clone().into());
                annotations.insert(ANNOTATION_REF_NAME.into(), full.into());
                index_entries.push(desc(Some(annotations.into())));
            }
        }
        let index = canonical_json(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": index_entries,
        }));
        self.bytes("index.json", &index)
    }
}
