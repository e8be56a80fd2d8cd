//! Compiled components cached per user, so that starting a container pays no compile.
//!
//! `DIR/<sha256 of the wasm>-<engine compatibility hash>.cwasm`, 0600 in a 0700 directory
//! owned by the user, written atomically. The compatibility hash covers wasmtime's version,
//! the target and its CPU features and the engine's settings: any change misses the cache
//! rather than loading an artifact the engine would reject.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;

pub(crate) struct CompileCache {
    dir: PathBuf,
    compat: String,
}

impl CompileCache {
    pub(crate) fn open(dir: PathBuf, engine: &Engine) -> Result<Self, PluginError> {
        let err = |what, source| PluginError::Cache {
            path: dir.clone(),
            what,
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| err("cannot create the directory", e))?;
        let meta = std::fs::metadata(&dir).map_err(|e| err("cannot read the directory", e))?;
        if meta.uid() != nix::unistd::geteuid().as_raw() {
            let e = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
            return Err(err(
                "is owned by another user (remove it; burrow loads native code from it)",
                e,
            ));
        }
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| err("cannot make the directory private (0700)", e))?;
        }
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = hex::encode(&hasher.0.finalize()[..8]);
        Ok(CompileCache { dir, compat })
    }

    pub(crate) fn path_for(&self, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir.join(format!("{digest}-{}.cwasm", self.compat))
    }

    /// The component for `wasm`: deserialized from the cache, or compiled and cached.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        label: &str,
        wasm: &[u8],
        compiles: &AtomicU64,
    ) -> Result<Component, PluginError> {
        let path = self.path_for(wasm);
        if path.exists() {
            let started = Instant::now();
            match deserialize(engine, &path) {
                Ok(c) => {
                    tracing::debug!(plugin = label, ?path, elapsed = ?started.elapsed(), "loaded compiled plugin");
                    return Ok(c);
                }
                // Truncated, from another build, or tampered with: compile it again.
                Err(err) => {
                    tracing::warn!(plugin = label, ?path, %err, "cached plugin rejected; recompiling")
                }
            }
        }
        let started = Instant::now();
        let code = engine
            .precompile_component(wasm)
            .map_err(|source| PluginError::Compile {
                plugin: label.into(),
                source,
            })?;
        compiles.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(plugin = label, ?path, elapsed = ?started.elapsed(), "compiled plugin");
        crate::fsutil::write_atomic(&path, &code, crate::fsutil::Atomic::PRIVATE).map_err(|e| {
            PluginError::Cache {
                path: path.clone(),
                what: "cannot write the compiled plugin",
                source: e.source,
            }
        })?;
        deserialize(engine, &path).map_err(|source| PluginError::Compile {
            plugin: label.into(),
            source,
        })
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file is native code we compiled ourselves: it is written 0600, by atomic
    // rename, into a 0700 directory owned by this user (checked in `CompileCache::open`), so
    // only this user could have changed it. wasmtime still checks its header, version and
    // engine settings and rejects anything else.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Feeds `Hash` output into SHA-256: a key that stays the same across Rust releases
/// (std's `DefaultHasher` makes no such promise).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        // Never used: the digest is taken from the inner SHA-256.
        0
    }
}
