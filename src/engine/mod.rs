//! The operations behind the commands: the one API the CLI (and later the REST service)
//! calls. The engine owns the order of steps; the modules below it own the mechanics.

pub mod config;
pub mod containers;
mod events;
mod handles;
pub mod images;
mod lock;
pub mod logconfig;
mod names;
pub mod networks;
pub mod plugins;
mod records;
pub mod spec;
pub mod template;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use crate::image::blobs::BlobStore;
use crate::runtime::{IdMapping, RuntimeError};
use crate::state::{State, StateError};

pub use crate::monitor::stdio::{READY as RELAY_READY, frame};
pub use crate::state::EventRecord;
pub use config::{GlobalOptions, Paths};
pub use containers::{
    ContainerSummary, Containers, ExecOptions, LogLine, LogsOptions, MonitorArgs, RelayArgs,
    RemoveOptions, report_monitor_failure,
};
pub use events::Events;
pub use handles::{Ids, PluginSlot, StorageSlot, Warnings};
pub use images::{Images, PullOptions};
pub use networks::Networks;
pub use plugins::Plugins;
pub use records::Records;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot {what} {}", path.display())]
    Io {
        /// What burrow was doing with the path: "read", "create", "connect to", …
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad config file {path}")]
    ConfigFile {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{path} is not a directory owned by uid {owner}=you; remove it or set XDG_RUNTIME_DIR")]
    UnsafeDir { path: PathBuf, owner: u32 },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Reference(#[from] crate::image::reference::ReferenceError),
    #[error(transparent)]
    Registry(#[from] crate::image::registry::RegistryError),
    #[error(transparent)]
    Blob(#[from] crate::image::blobs::BlobError),
    #[error(transparent)]
    Auth(#[from] crate::image::auth::AuthError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A container's logging refused (its options, its driver).
    #[error(transparent)]
    Log(#[from] logconfig::LogRefusal),
    /// A plugin operation refused.
    #[error(transparent)]
    PluginUse(#[from] plugins::PluginRefusal),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error("cannot unpack {image}")]
    Unpack {
        image: String,
        #[source]
        source: crate::runtime::JobError,
    },
    #[error("image {image} has a malformed configuration")]
    ImageConfig {
        image: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "image {image} lists {diff_ids} layers in its config but {layers} in its manifest; the image is broken"
    )]
    LayerCount {
        image: String,
        diff_ids: usize,
        layers: usize,
    },
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("no such object: {0}")]
    NoSuchObject(String),
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("{key} matches {count} {what}s; give more characters of the id")]
    Ambiguous {
        key: String,
        count: usize,
        what: &'static str,
    },
    #[error(
        "conflict: unable to remove image {image}: it is used by container {container} (remove the container first, or use -f)"
    )]
    ImageInUse { image: String, container: String },
    #[error(
        "conflict: unable to delete {image} (must be forced): it is referenced in several repositories"
    )]
    ImageMultiplyTagged { image: String },
    #[error("cannot remove container {0}: it is running (stop it first, or use -f)")]
    ContainerRunning(String),
    #[error(
        "no command specified: image {0} has no Entrypoint or Cmd; give a command after the image"
    )]
    NoCommand(String),
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    RelativeWorkdir(String),
    #[error("invalid hostname {0:?}: use letters, digits, '-' and '.' (at most 253 characters)")]
    BadHostname(String),
    #[error("invalid environment variable {0:?}: use KEY=VALUE or KEY")]
    BadEnv(String),
    #[error(
        "{path}:{line}: variable {key:?} is not a valid name (KEY=VALUE, no whitespace in KEY)"
    )]
    BadEnvFile {
        path: PathBuf,
        line: usize,
        key: String,
    },
    #[error(
        "network mode {0:?} is not available yet: use --network none, host or a network's name"
    )]
    UnsupportedNetwork(String),
    /// A network, or a container's network flags, refused.
    #[error(transparent)]
    Network(#[from] networks::NetworkRefusal),
    #[error("no such network: {0}")]
    NoSuchNetwork(String),
    #[error(transparent)]
    Policy(#[from] crate::monitor::PolicyError),
    #[error(transparent)]
    Healthcheck(#[from] crate::monitor::health::TooShort),
    #[error("{message}")]
    StartFailed {
        name: String,
        code: i32,
        message: String,
    },
    #[error("the monitor of container {name} exited before starting it; see {log}")]
    MonitorDied { name: String, log: PathBuf },
    #[error("cannot send {signal} to container {name}")]
    Signal {
        name: String,
        signal: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("conflicting options: --restart and --rm (a removed container cannot restart)")]
    RestartWithRm,
    #[error("invalid signal {0:?}: use a name such as SIGTERM or TERM, or a number")]
    BadSignal(String),
    #[error("unknown storage driver {0:?}: use overlay, fuse-overlayfs or vfs")]
    BadStorageDriver(String),
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
}

impl EngineError {
    /// The process exit code for this error: Docker's 125/126/127.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Runtime(e) => e.exit_code(),
            EngineError::StartFailed { code, .. } => *code,
            _ => 125,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// An open engine: the handles every command shares (paths, the state store, the blob
/// store, the id mapping, the storage driver and plugin host made on first use). It hands
/// out the services the CLI (and later the REST API) calls; each service holds only the
/// handles it needs, and the services it calls are built from those.
pub struct Engine {
    pub paths: Paths,
    file: config::FileConfig,
    global: GlobalOptions,
    state: State,
    blobs: BlobStore,
    ids: Ids,
    storage: StorageSlot,
    plugins: PluginSlot,
    warnings: Warnings,
}

impl Engine {
    pub fn open(global: GlobalOptions) -> Result<Engine> {
        let home = config::home_dir();
        let file = config::load_file_config(&global, &home)?;
        let paths = Paths::resolve(&global, &file)?;
        paths.ensure()?;
        let state = State::open(&paths.state_db())?;
        let blobs = BlobStore::new(paths.data.join("blobs"));
        let (idmap, idmap_warning) = IdMapping::for_current_user()?;
        crate::timing::mark("engine:open");
        let wanted_driver = global
            .storage_driver
            .clone()
            .or_else(|| file.storage_driver.clone());
        Ok(Engine {
            storage: StorageSlot::new(&paths.data, wanted_driver),
            plugins: PluginSlot::new(&paths.data),
            paths,
            file,
            global,
            state,
            blobs,
            ids: Ids::new(idmap, idmap_warning),
            warnings: Warnings::default(),
        })
    }

    /// Warnings gathered so far, for the CLI to print once.
    pub fn take_warnings(&self) -> Vec<String> {
        self.warnings.take()
    }

    pub fn images(&self) -> Images<'_> {
        Images {
            paths: &self.paths,
            file: &self.file,
            state: &self.state,
            blobs: &self.blobs,
            storage: &self.storage,
            ids: &self.ids,
            warnings: &self.warnings,
        }
    }

    pub fn plugins(&self) -> Plugins<'_> {
        Plugins {
            paths: &self.paths,
            state: &self.state,
            slot: &self.plugins,
        }
    }

    pub fn networks(&self) -> Networks<'_> {
        Networks {
            paths: &self.paths,
            file: &self.file,
            state: &self.state,
            ids: &self.ids,
            records: self.records(),
            plugins: self.plugins(),
        }
    }

    pub fn containers(&self) -> Containers<'_> {
        Containers {
            paths: &self.paths,
            global: &self.global,
            state: &self.state,
            storage: &self.storage,
            ids: &self.ids,
            warnings: &self.warnings,
            records: self.records(),
            images: self.images(),
            networks: self.networks(),
            plugins: self.plugins(),
        }
    }

    pub fn events(&self) -> Events<'_> {
        Events { state: &self.state }
    }

    fn records(&self) -> Records<'_> {
        Records {
            paths: &self.paths,
            state: &self.state,
        }
    }
}

/// 32 random bytes as 64 hex characters: container ids.
fn random_id() -> Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 32];
    let path = PathBuf::from("/dev/urandom");
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|source| EngineError::Io {
            what: "read",
            path,
            source,
        })?;
    Ok(hex::encode(buf))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC with nanoseconds, as Docker prints times; Docker's zero time when unset.
pub fn rfc3339(unix: Option<i64>) -> String {
    match unix {
        Some(secs) if secs > 0 => {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
            humantime::format_rfc3339_nanos(t).to_string()
        }
        _ => "0001-01-01T00:00:00Z".into(),
    }
}
