//! Image operations: pull, resolve, list, tag, remove, prune, login.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;

use serde_json::{Value, json};

use super::config::{FileConfig, Paths};
use super::handles::{Ids, StorageSlot, Warnings};
use super::lock::FileLock;
use super::{EngineError, Result, now_unix};
use crate::image::blobs::BlobStore;
use crate::image::reference::Reference;
use crate::image::registry::{self, Platform, Progress, RegistryOptions};
use crate::image::unpack::{UnpackOptions, unpack_layer};
use crate::state::{self, ImageRecord, LayerRecord, State};
use crate::storage::Storage;

#[derive(Debug, Default, Clone)]
pub struct PullOptions {
    /// `Some(false)` for --tls-verify=false.
    pub tls_verify: Option<bool>,
    pub platform: Option<String>,
}

/// One row of `burrow images`.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub id: String,
    /// Docker's REPOSITORY column ("busybox", "127.0.0.1:5000/app"), "<none>" if untagged.
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub created: Option<String>,
    pub size: u64,
    pub dangling: bool,
}

/// What `rmi` did, in Docker's words ("Untagged: …", "Deleted: …").
#[derive(Debug, Default)]
pub struct RemovedImage {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct ConfigHead {
    rootfs: RootFs,
    #[serde(default)]
    created: Option<String>,
}

/// A repository name as Docker shows it ("busybox" for docker.io/library/busybox).
pub fn familiar_repo(repo: &str) -> String {
    Reference::parse(repo)
        .map(|r| r.familiar_repo())
        .unwrap_or_else(|_| repo.to_string())
}

/// Docker shows short names without docker.io/library/.
pub fn familiar(full: &str) -> String {
    match Reference::parse(full) {
        Ok(r) => {
            let repo = r.familiar_repo();
            match (&r.tag, &r.digest) {
                (Some(t), _) => format!("{repo}:{t}"),
                (None, Some(d)) => format!("{repo}@{d}"),
                _ => repo,
            }
        }
        Err(_) => full.to_string(),
    }
}

/// Images: pulled, listed, tagged, removed; the blobs and unpacked layers behind them.
#[derive(Clone, Copy)]
pub struct Images<'e> {
    pub(super) paths: &'e Paths,
    pub(super) file: &'e FileConfig,
    pub(super) state: &'e State,
    pub(super) blobs: &'e BlobStore,
    pub(super) storage: &'e StorageSlot,
    pub(super) ids: &'e Ids,
    pub(super) warnings: &'e Warnings,
}

impl Images<'_> {
    /// The storage driver (detected on first use).
    pub(super) fn driver(&self) -> Result<&Storage> {
        self.storage.get(self.ids, self.warnings)
    }

    pub fn registry_options(
        &self,
        reference: &Reference,
        tls_verify: Option<bool>,
        platform: Option<&str>,
    ) -> Result<RegistryOptions> {
        let insecure = tls_verify == Some(false)
            || self
                .file
                .insecure_registries
                .iter()
                .any(|r| r == &reference.registry);
        let platform = match platform {
            Some(p) => Platform::parse(p)?,
            None => Platform::host(),
        };
        Ok(RegistryOptions {
            insecure,
            platform,
            auth_files: self.paths.auth_files.clone(),
            max_parallel: 3,
            retries: 3,
        })
    }

    /// Pulls `name` and returns the image id.
    pub fn pull(&self, name: &str, opts: &PullOptions, progress: &dyn Progress) -> Result<String> {
        let reference = Reference::parse(name)?;
        let _span = tracing::info_span!("pull", image = %reference).entered();
        let ropts = self.registry_options(&reference, opts.tls_verify, opts.platform.as_deref())?;
        let fetched = registry::fetch_image(&reference, &ropts, self.blobs, progress)?;
        let image_name = reference.to_string();
        let head: ConfigHead =
            serde_json::from_slice(&fetched.config).map_err(|source| EngineError::ImageConfig {
                image: image_name.clone(),
                source,
            })?;
        let diff_ids = head.rootfs.diff_ids;
        if diff_ids.len() != fetched.layers.len() {
            return Err(EngineError::LayerCount {
                image: image_name,
                diff_ids: diff_ids.len(),
                layers: fetched.layers.len(),
            });
        }
        let chain_ids = crate::storage::chain_ids(&diff_ids);
        let layers: Vec<LayerRecord> = fetched
            .layers
            .iter()
            .zip(diff_ids.iter().zip(&chain_ids))
            .map(|(l, (diff_id, chain_id))| LayerRecord {
                digest: l.digest.clone(),
                diff_id: diff_id.clone(),
                chain_id: chain_id.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
            })
            .collect();
        let compressions: Vec<_> = fetched.layers.iter().map(|l| l.compression).collect();
        let size = self.unpack_layers(&image_name, &layers, &compressions)?;

        let config = String::from_utf8_lossy(&fetched.config).into_owned();
        let repo_digest = format!("{}@{}", reference.repo_name(), fetched.manifest_digest);
        let mut repo_digests = self
            .state
            .image(&fetched.config_digest)?
            .map(|i| i.repo_digests)
            .unwrap_or_default();
        if !repo_digests.contains(&repo_digest) {
            repo_digests.push(repo_digest);
        }
        let record = ImageRecord {
            id: fetched.config_digest.clone(),
            repo_digests,
            config,
            layers,
            size,
            added: now_unix(),
        };
        let tag = reference.tagged_name();
        self.state.write(|tx| {
            state::put_image(tx, &record)?;
            if let Some(tag) = &tag {
                state::set_tag(tx, tag, &record.id)?;
            }
            Ok(())
        })?;
        let name = familiar(&reference.to_string());
        super::events::image(self.state, &name, "pull", &name);
        Ok(record.id)
    }

    /// Unpacks the layers not yet in storage (inside the user namespace, under the
    /// storage lock) and returns the image's uncompressed size.
    fn unpack_layers(
        &self,
        image: &str,
        layers: &[LayerRecord],
        compressions: &[crate::image::Compression],
    ) -> Result<u64> {
        let _lock = FileLock::exclusive(&self.paths.data.join("storage.lock"))?;
        let storage = self.driver()?.clone();
        let jobs: Vec<_> = layers
            .iter()
            .zip(compressions)
            .map(|(l, c)| (self.blobs.path(&l.digest), *c, l.clone()))
            .collect();
        let ignore_chown_errors = self.ids.map().single();
        if jobs.iter().any(|(_, _, l)| !storage.has_layer(&l.chain_id)) {
            self.ids.used(self.warnings);
        }
        let sizes = crate::runtime::in_userns(self.ids.map(), || {
            let mut sizes = Vec::new();
            for (blob, compression, layer) in &jobs {
                let dest = storage.layer_dir(&layer.chain_id);
                let size_file = dest.with_file_name("size");
                if storage.has_layer(&layer.chain_id) {
                    let size = std::fs::read_to_string(&size_file)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                    sizes.push(size);
                    continue;
                }
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                let stats = unpack_layer(
                    blob,
                    *compression,
                    &dest,
                    &UnpackOptions {
                        ignore_chown_errors,
                    },
                )
                .map_err(|e| crate::errors::render_chain(&e))?;
                if stats.diff_id != layer.diff_id {
                    let _ = std::fs::remove_dir_all(dest.parent().unwrap_or(&dest));
                    return Err(format!(
                        "layer {} uncompresses to {} but the image config says {}; the image is corrupt",
                        layer.digest, stats.diff_id, layer.diff_id
                    ));
                }
                std::fs::write(&size_file, stats.size.to_string())
                    .map_err(|e| format!("{}: {e}", size_file.display()))?;
                sizes.push(stats.size);
            }
            Ok(sizes)
        })
        .map_err(|e| match e {
            crate::runtime::RuntimeError::Job(source) => EngineError::Unpack {
                image: image.to_string(),
                source,
            },
            other => EngineError::Runtime(other),
        })?;
        Ok(sizes.iter().sum())
    }

    /// Finds a local image by name, `name@digest`, full id or id prefix.
    pub fn resolve(&self, key: &str) -> Result<ImageRecord> {
        if let Ok(reference) = Reference::parse(key) {
            let by_name = match (&reference.digest, reference.tagged_name()) {
                (Some(d), _) => {
                    let wanted = format!("{}@{d}", reference.repo_name());
                    self.state
                        .images()?
                        .into_iter()
                        .find(|i| i.repo_digests.contains(&wanted))
                }
                (None, Some(tag)) => match self.state.tag_target(&tag)? {
                    Some(id) => self.state.image(&id)?,
                    None => None,
                },
                (None, None) => None,
            };
            if let Some(image) = by_name {
                return Ok(image);
            }
        }
        let hex = key.strip_prefix("sha256:").unwrap_or(key);
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let ids = self
                .state
                .image_ids_with_prefix(&hex.to_ascii_lowercase())?;
            match ids.len() {
                0 => {}
                1 => {
                    return self
                        .state
                        .image(&ids[0])?
                        .ok_or_else(|| EngineError::NoSuchImage(key.into()));
                }
                n => {
                    return Err(EngineError::Ambiguous {
                        key: key.into(),
                        count: n,
                        what: "image",
                    });
                }
            }
        }
        Err(EngineError::NoSuchImage(key.to_string()))
    }

    /// The image for `run`/`create`: local, else pulled.
    pub fn for_run(
        &self,
        name: &str,
        opts: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<ImageRecord> {
        match self.resolve(name) {
            Ok(image) => Ok(image),
            Err(EngineError::NoSuchImage(_)) => {
                let id = self.pull(name, opts, progress)?;
                self.state
                    .image(&id)?
                    .ok_or_else(|| EngineError::NoSuchImage(name.into()))
            }
            Err(e) => Err(e),
        }
    }

    pub fn tags_by_image(&self) -> Result<HashMap<String, Vec<String>>> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (name, id) in self.state.tags()? {
            map.entry(id).or_default().push(name);
        }
        Ok(map)
    }

    /// Rows for `images`; `all` is accepted for Docker compatibility (burrow keeps no
    /// intermediate images, so it changes nothing yet).
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let tags = self.tags_by_image()?;
        let mut out = Vec::new();
        for image in self.state.images()? {
            let created = serde_json::from_str::<ConfigHead>(&image.config)
                .ok()
                .and_then(|h| h.created);
            let digest_of = |repo: &str| {
                image
                    .repo_digests
                    .iter()
                    .find_map(|rd| rd.split_once('@').filter(|(r, _)| *r == repo))
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_else(|| "<none>".into())
            };
            let names = tags.get(&image.id).cloned().unwrap_or_default();
            if names.is_empty() {
                // Untagged: Docker shows the repository it was pulled from by digest,
                // or <none> for a dangling image.
                let repo = image.repo_digests.first().and_then(|rd| rd.split_once('@'));
                let dangling = true;
                out.push(ImageSummary {
                    id: image.id.clone(),
                    repository: repo
                        .map(|(r, _)| familiar_repo(r))
                        .unwrap_or_else(|| "<none>".into()),
                    tag: "<none>".into(),
                    digest: repo.map_or("<none>".into(), |(_, d)| d.to_string()),
                    created: created.clone(),
                    size: image.size,
                    dangling: dangling && repo.is_none(),
                });
                continue;
            }
            for name in names {
                let (repo, tag) = match name.rsplit_once(':') {
                    Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                    _ => (name.clone(), "<none>".into()),
                };
                out.push(ImageSummary {
                    id: image.id.clone(),
                    repository: familiar_repo(&repo),
                    tag,
                    digest: digest_of(&repo),
                    created: created.clone(),
                    size: image.size,
                    dangling: false,
                });
            }
        }
        Ok(out)
    }

    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let image = self.resolve(source)?;
        let target = Reference::parse(target)?;
        let name = target
            .tagged_name()
            .ok_or_else(|| EngineError::NoSuchImage(target.to_string()))?;
        self.state
            .write(|tx| state::set_tag(tx, &name, &image.id).map(|_| ()))?;
        super::events::image(self.state, &image.id, "tag", &familiar(&name));
        Ok(())
    }

    /// `rmi`: untags a name; deletes the image when no tag is left. Without `force`, an
    /// image used by a container is refused; with it, the image stays as a dangling
    /// `<none>` image while containers use it (Docker's behaviour).
    pub fn remove(&self, key: &str, force: bool) -> Result<RemovedImage> {
        let image = self.resolve(key)?;
        let removed = self.untag_or_delete(&image, key, force)?;
        for name in &removed.untagged {
            super::events::image(self.state, &image.id, "untag", name);
        }
        if removed.deleted.contains(&image.id) {
            super::events::image(self.state, &image.id, "delete", &image.id);
        }
        Ok(removed)
    }

    fn untag_or_delete(&self, image: &ImageRecord, key: &str, force: bool) -> Result<RemovedImage> {
        let tags = self.tags_by_image()?.remove(&image.id).unwrap_or_default();
        let users = self.state.containers_using_image(&image.id)?;
        let mut removed = RemovedImage::default();

        // A name (not an id) with other names left: only untag it.
        let named_tag = Reference::parse(key)
            .ok()
            .and_then(|r| r.tagged_name())
            .filter(|t| tags.contains(t));
        if let Some(tag) = &named_tag {
            if tags.len() > 1 {
                self.state
                    .write(|tx| state::remove_tag(tx, tag).map(|_| ()))?;
                removed.untagged.push(familiar(tag));
                return Ok(removed);
            }
        } else if tags.len() > 1 && !force {
            return Err(EngineError::ImageMultiplyTagged {
                image: key.to_string(),
            });
        }
        if let Some(c) = users.first() {
            if !force {
                return Err(EngineError::ImageInUse {
                    image: key.to_string(),
                    container: c.id.chars().take(12).collect(),
                });
            }
            // Forced while in use: drop its names, keep the image (dangling <none>).
            self.state.write(|tx| {
                for t in &tags {
                    state::remove_tag(tx, t)?;
                }
                state::clear_repo_digests(tx, &image.id)
            })?;
            removed.untagged.extend(tags.iter().map(|t| familiar(t)));
            removed
                .untagged
                .extend(image.repo_digests.iter().map(|d| familiar(d)));
            return Ok(removed);
        }
        self.state.write(|tx| state::remove_image(tx, &image.id))?;
        removed.untagged.extend(tags.iter().map(|t| familiar(t)));
        removed
            .untagged
            .extend(image.repo_digests.iter().map(|d| familiar(d)));
        removed.deleted.push(image.id.clone());
        removed.deleted.extend(self.collect_garbage()?);
        Ok(removed)
    }

    /// `image prune`: removes dangling images (all unused ones with `all`).
    pub fn prune(&self, all: bool) -> Result<(Vec<String>, u64)> {
        let tags = self.tags_by_image()?;
        let used: BTreeSet<String> = self
            .state
            .containers()?
            .into_iter()
            .map(|c| c.image_id)
            .collect();
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for image in self.state.images()? {
            let tagged = tags.contains_key(&image.id);
            if used.contains(&image.id) || (tagged && !all) {
                continue;
            }
            self.state.write(|tx| state::remove_image(tx, &image.id))?;
            reclaimed += image.size;
            deleted.push(image.id);
        }
        if !deleted.is_empty() {
            self.collect_garbage()?;
        }
        Ok((deleted, reclaimed))
    }

    /// Removes layers and blobs no image refers to any more. Returns the removed layers'
    /// chain ids.
    fn collect_garbage(&self) -> Result<Vec<String>> {
        let _lock = FileLock::exclusive(&self.paths.data.join("storage.lock"))?;
        let images = self.state.images()?;
        let used_layers = self.state.layers_in_use()?;
        let mut used_blobs: BTreeSet<String> = BTreeSet::new();
        for i in &images {
            used_blobs.insert(i.id.clone());
            used_blobs.extend(i.layers.iter().map(|l| l.digest.clone()));
        }
        let storage = self.driver()?.clone();
        let layer_root = self.paths.data.join("layers");
        let mut stale = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&layer_root) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let chain = format!("sha256:{name}");
                if name.len() == 64 && !used_layers.contains(&chain) {
                    stale.push(chain);
                }
            }
        }
        if !stale.is_empty() {
            let to_remove = stale.clone();
            crate::runtime::in_userns(self.ids.map(), move || {
                for chain in &to_remove {
                    storage
                        .remove_layer(chain)
                        .map_err(|e| crate::errors::render_chain(&e))?;
                }
                Ok::<_, String>(())
            })?;
        }
        for digest in self.blobs.list()? {
            if !used_blobs.contains(&digest) {
                self.blobs.remove(&digest)?;
            }
        }
        Ok(stale)
    }

    pub fn login(
        &self,
        server: &str,
        user: &str,
        password: &str,
        tls_verify: Option<bool>,
    ) -> Result<()> {
        let registry = normalise_server(server);
        let reference = Reference::parse(&format!("{registry}/x"))?;
        let opts = self.registry_options(&reference, tls_verify, None)?;
        registry::login(&reference.registry, user, password, &opts)?;
        crate::image::auth::store(&self.paths.auth_file, &reference.registry, user, password)?;
        Ok(())
    }

    /// Returns false when there were no stored credentials for the server.
    pub fn logout(&self, server: &str) -> Result<bool> {
        let registry = normalise_server(server);
        let reference = Reference::parse(&format!("{registry}/x"))?;
        Ok(crate::image::auth::remove(
            &self.paths.auth_file,
            &reference.registry,
        )?)
    }

    pub fn config(&self, image: &ImageRecord) -> Result<serde_json::Value> {
        serde_json::from_str(&image.config).map_err(|source| EngineError::ImageConfig {
            image: image.id.clone(),
            source,
        })
    }

    pub fn inspect(&self, image: &ImageRecord) -> Result<Value> {
        let config = self.config(image)?;
        let tags = self
            .tags_by_image()?
            .remove(&image.id)
            .unwrap_or_default()
            .iter()
            .map(|t| familiar(t))
            .collect::<Vec<_>>();
        let repo_digests: Vec<String> = image.repo_digests.iter().map(|d| familiar(d)).collect();
        let driver = self.storage_driver()?;
        let layer_dirs: Vec<String> = image
            .layers
            .iter()
            .rev()
            .map(|l| {
                self.paths
                    .data
                    .join("layers")
                    .join(l.chain_id.trim_start_matches("sha256:"))
                    .join("diff")
                    .display()
                    .to_string()
            })
            .collect();
        let field = |k: &str| config.get(k).cloned().unwrap_or(Value::Null);
        Ok(json!({
            "Id": image.id,
            "RepoTags": tags,
            "RepoDigests": repo_digests,
            "Parent": "",
            "Comment": config.get("comment").cloned().unwrap_or(json!("")),
            "Created": field("created"),
            "DockerVersion": "",
            "Author": config.get("author").cloned().unwrap_or(json!("")),
            "Config": field("config"),
            "Architecture": field("architecture"),
            "Variant": config.get("variant").cloned(),
            "Os": field("os"),
            "Size": image.size,
            "GraphDriver": {
                "Name": driver,
                "Data": { "LowerDir": layer_dirs.join(":") },
            },
            "RootFS": {
                "Type": "layers",
                "Layers": image.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "Metadata": { "LastTagTime": super::rfc3339(Some(image.added)) },
        }))
    }

    pub fn storage_driver(&self) -> Result<String> {
        Ok(self.driver()?.driver().to_string())
    }
}

fn normalise_server(server: &str) -> String {
    let s = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let s = s.strip_suffix("/v1").unwrap_or(s);
    let s = s.strip_suffix("/v2").unwrap_or(s);
    if s == "index.docker.io" || s == "registry-1.docker.io" {
        "docker.io".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_server_names_normalise() {
        assert_eq!(normalise_server("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalise_server("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(normalise_server("http://reg.local/v2/"), "reg.local");
    }

    #[test]
    fn familiar_names() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000/a/b:1");
        assert_eq!(familiar_repo("docker.io/library/busybox"), "busybox");
        assert_eq!(familiar_repo("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b");
    }
}
