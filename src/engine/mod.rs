//! The operations behind the commands: the one API the CLI (and later the REST service)
//! calls. The engine owns the order of steps; the modules below it own the mechanics.

mod attach;
pub mod config;
mod container;
mod events;
mod health;
mod image;
pub mod inspect;
mod lifecycle;
mod lock;
pub mod logconfig;
mod logs;
mod names;
pub mod network;
pub mod plugins;
pub mod spec;
pub mod template;

use std::path::PathBuf;

use crate::image::blobs::BlobStore;
use crate::runtime::{IdMapping, RuntimeError};
use crate::state::{State, StateError};
use crate::storage::{DriverKind, Storage};

pub use crate::state::EventRecord;
pub use attach::{RELAY_READY, RelayArgs, frame};
pub use config::{GlobalOptions, Paths};
pub use container::{ContainerSummary, RemoveOptions};
pub use image::PullOptions;
pub use lifecycle::{ExecOptions, MonitorArgs, RESTARTING, report_monitor_failure};
pub use logs::{LogLine, LogsOptions};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}")]
    Io {
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
    /// A log option the host or the driver refused; the message is Docker's.
    #[error("{0}")]
    LogConfig(String),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error("cannot unpack {image}: {message}")]
    Unpack { image: String, message: String },
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
    /// A network option the host or the driver refused; the message says what to change.
    #[error("{0}")]
    NetworkConfig(String),
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

/// An open engine: paths, the state store, the blob store, the id mapping.
pub struct Engine {
    pub paths: Paths,
    file: config::FileConfig,
    global: GlobalOptions,
    state: State,
    blobs: BlobStore,
    idmap: IdMapping,
    idmap_warning: Option<String>,
    storage: Option<Storage>,
    warnings: Vec<String>,
    /// The size a container's terminal starts with (`__monitor --tty-size`).
    tty_size: Option<(u16, u16)>,
    /// The WebAssembly plugin host, started on first use.
    plugins: Option<crate::plugin::PluginHost>,
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
        Ok(Engine {
            paths,
            file,
            global,
            state,
            blobs,
            idmap,
            idmap_warning,
            tty_size: None,
            plugins: None,
            storage: None,
            warnings: Vec::new(),
        })
    }

    /// Warnings gathered so far, for the CLI to print once.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Notes the id-mapping warning the first time something needs the user namespace.
    pub(super) fn idmap_used(&mut self) {
        if let Some(w) = self.idmap_warning.take() {
            self.warnings.push(w);
        }
    }

    /// The storage driver: the flag, else the config file, else what was detected before
    /// (recorded in the data directory), else detected now inside the user namespace.
    fn storage(&mut self) -> Result<&Storage> {
        if self.storage.is_none() {
            let recorded_path = self.paths.data.join("storage-driver");
            let recorded = std::fs::read_to_string(&recorded_path)
                .ok()
                .map(|s| s.trim().to_string());
            let wanted = self
                .global
                .storage_driver
                .clone()
                .or_else(|| self.file.storage_driver.clone());
            let kind = match (wanted, recorded) {
                (Some(w), _) => w
                    .parse::<DriverKind>()
                    .map_err(|_| EngineError::BadStorageDriver(w.clone()))?,
                (None, Some(r)) => r
                    .parse::<DriverKind>()
                    .map_err(|_| EngineError::BadStorageDriver(r.clone()))?,
                (None, None) => {
                    let scratch = self.paths.data.join("tmp");
                    self.idmap_used();
                    let name = crate::runtime::in_userns(&self.idmap, || {
                        Ok::<_, String>(crate::storage::detect_driver(&scratch).to_string())
                    })?;
                    let kind = name
                        .parse::<DriverKind>()
                        .map_err(|_| EngineError::BadStorageDriver(name.clone()))?;
                    lock::write_atomic(&recorded_path, format!("{kind}\n").as_bytes())?;
                    kind
                }
            };
            tracing::debug!(driver = %kind, "storage driver");
            self.storage = Some(Storage::new(&self.paths.data, kind));
        }
        Ok(self.storage.as_ref().expect("set above"))
    }
}

/// 32 random bytes as 64 hex characters: container ids.
fn random_id() -> Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 32];
    let path = PathBuf::from("/dev/urandom");
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|source| EngineError::Io { path, source })?;
    Ok(hex::encode(buf))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
