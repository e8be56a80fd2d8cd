//! What the engine's services share, opened once per command: the id mapping, the storage
//! driver and the plugin host (both made on first use), and the warnings for the CLI to
//! print. Each is usable through a shared reference, so a service holds `&` to exactly the
//! handles it needs and hands the same ones to the services it calls.

use std::cell::{OnceCell, RefCell};
use std::path::{Path, PathBuf};

use super::{EngineError, Result, lock};
use crate::plugin::PluginHost;
use crate::runtime::IdMapping;
use crate::storage::{DriverKind, Storage};

/// Warnings gathered while a command runs; the CLI prints them once at its end.
#[derive(Debug, Default)]
pub struct Warnings(RefCell<Vec<String>>);

impl Warnings {
    pub fn push(&self, warning: impl Into<String>) {
        self.0.borrow_mut().push(warning.into());
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// How ids map into the user namespaces burrow makes, and the warning that goes with a
/// mapping of the user's own id only (no subordinate ids), said once, when first used.
#[derive(Debug)]
pub struct Ids {
    map: IdMapping,
    pending: RefCell<Option<String>>,
}

impl Ids {
    pub fn new(map: IdMapping, warning: Option<String>) -> Ids {
        Ids {
            map,
            pending: RefCell::new(warning),
        }
    }

    /// The mapping, for something about to use a user namespace: the warning, if any, goes
    /// to `warnings` the first time.
    pub fn used(&self, warnings: &Warnings) -> &IdMapping {
        if let Some(w) = self.pending.borrow_mut().take() {
            warnings.push(w);
        }
        &self.map
    }

    /// The mapping, without noting its use (to pass it on, or where no warning belongs).
    pub fn map(&self) -> &IdMapping {
        &self.map
    }
}

/// The rootfs driver: the flag, else the config file, else what was detected before
/// (recorded in the data directory), else detected now inside the user namespace.
#[derive(Debug)]
pub struct StorageSlot {
    data: PathBuf,
    wanted: Option<String>,
    driver: OnceCell<Storage>,
}

impl StorageSlot {
    pub fn new(data: &Path, wanted: Option<String>) -> StorageSlot {
        StorageSlot {
            data: data.to_path_buf(),
            wanted,
            driver: OnceCell::new(),
        }
    }

    pub fn get(&self, ids: &Ids, warnings: &Warnings) -> Result<&Storage> {
        if let Some(s) = self.driver.get() {
            return Ok(s);
        }
        let recorded_path = self.data.join("storage-driver");
        let recorded = std::fs::read_to_string(&recorded_path)
            .ok()
            .map(|s| s.trim().to_string());
        let parse = |name: &str| {
            name.parse::<DriverKind>()
                .map_err(|_| EngineError::BadStorageDriver(name.to_string()))
        };
        let kind = match (&self.wanted, recorded) {
            (Some(w), _) => parse(w)?,
            (None, Some(r)) => parse(&r)?,
            (None, None) => {
                let scratch = self.data.join("tmp");
                let name = crate::runtime::in_userns(ids.used(warnings), || {
                    Ok::<_, String>(crate::storage::detect_driver(&scratch).to_string())
                })?;
                let kind = parse(&name)?;
                lock::write_atomic(&recorded_path, format!("{kind}\n").as_bytes())?;
                kind
            }
        };
        tracing::debug!(driver = %kind, "storage driver");
        Ok(self.driver.get_or_init(|| Storage::new(&self.data, kind)))
    }
}

/// The WebAssembly plugin host, started on first use (a command that loads no plugin pays
/// nothing for it).
pub struct PluginSlot {
    cache_dir: PathBuf,
    host: OnceCell<PluginHost>,
}

impl PluginSlot {
    pub fn new(data: &Path) -> PluginSlot {
        PluginSlot {
            cache_dir: crate::plugin::default_cache_dir()
                .unwrap_or_else(|| data.join("cache").join("wasm")),
            host: OnceCell::new(),
        }
    }

    pub fn host(&self) -> Result<&PluginHost> {
        if let Some(h) = self.host.get() {
            return Ok(h);
        }
        let host = PluginHost::new(self.cache_dir.clone())?;
        Ok(self.host.get_or_init(|| host))
    }

    /// Where compiled plugins are cached.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }
}
