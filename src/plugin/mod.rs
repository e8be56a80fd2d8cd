//! The WebAssembly plugin host: one wasmtime engine per process, a per-user cache of
//! compiled components, capability grants, limits, and the host side of the `log-driver`
//! world (plugin-sdk/wit/burrow.wit).
//!
//! A plugin gets no ambient authority. An instance is given what the plugin's `describe()`
//! asked for, intersected with what was granted ([`Grants`]), and each import further checks
//! the container's log options (an address or URL must be named by one of them). Every call
//! runs under a deadline and a memory cap; a trap or a timeout fails that call only, and the
//! [`Logger`] / [`Reader`] continue on a fresh instance.
//!
//! Built-in plugins are the crates under `plugins/`, embedded by build.rs; a crate named
//! `log-NAME` provides the log driver `NAME`.

// Nothing in the binary calls the host yet (the log pipeline arrives next): remove this
// once the monitor and `create` use it.

mod bindings;
mod cache;
mod endpoints;
mod http;
mod instance;
mod network_driver;
mod policy;
mod secrets;
mod state;
#[cfg(test)]
mod tests;
mod wasm_engine;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

pub use bindings::burrow::plugin::log_types::{
    Container, Entry, HostInfo, Partial, ReadOpts, Source,
};
pub use bindings::burrow::plugin::types::{Capabilities, Kv, PluginInfo};
pub use instance::{Logger, Reader};
pub use network_driver::*;

use policy::Policy;
use wasm_engine::Shared;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

    /// Driver names of the built-in crates called `PREFIX-NAME` (`log-`, `net-`).
    pub(super) fn names(prefix: &str) -> Vec<String> {
        BUILTIN_PLUGINS
            .iter()
            .filter_map(|(krate, _)| krate.strip_prefix(prefix))
            .map(String::from)
            .collect()
    }

    /// The component of the built-in crate `krate`.
    pub(super) fn component(krate: &str) -> Option<&'static [u8]> {
        BUILTIN_PLUGINS
            .iter()
            .find(|(k, _)| *k == krate)
            .map(|(_, wasm)| *wasm)
    }
}

/// The `burrow:plugin` major version this host implements, and the SDK that targets it.
const SUPPORTED_MAJOR: u64 = 1;
const SDK_HINT: &str = "burrow-plugin-sdk 0.1";

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin refused its options; the message is the plugin's, shown verbatim.
    #[error("{0}")]
    Config(String),
    #[error("plugin {plugin:?} cannot do this: {msg}")]
    Unsupported { plugin: String, msg: String },
    /// The destination is down: nothing of the batch was delivered.
    #[error("plugin {plugin:?}: {msg}")]
    Unavailable { plugin: String, msg: String },
    #[error("plugin {plugin:?} was refused access: {msg}")]
    Denied { plugin: String, msg: String },
    #[error("plugin {plugin:?} failed in {call}: {msg}")]
    Internal {
        plugin: String,
        call: &'static str,
        msg: String,
    },
    #[error("plugin {plugin:?} crashed in {call} (it is restarted on the next call)")]
    Trap {
        plugin: String,
        call: &'static str,
        #[source]
        source: wasmtime::Error,
    },
    #[error(
        "plugin {plugin:?} did not finish {call} within {secs} s (it is restarted on the next call)"
    )]
    Timeout {
        plugin: String,
        call: &'static str,
        secs: u64,
    },
    #[error(
        "plugin {plugin:?} was built for {found}; this burrow supports burrow:plugin@{SUPPORTED_MAJOR}.x (rebuild it against {SDK_HINT})"
    )]
    Incompatible { plugin: String, found: String },
    #[error(
        "plugin {plugin:?} is not a {kind}: it exports {exports} (expected burrow:plugin/{iface}@{SUPPORTED_MAJOR}.x)"
    )]
    WrongKind {
        plugin: String,
        kind: &'static str,
        iface: &'static str,
        exports: String,
    },
    #[error("plugin {plugin:?} needs imports this burrow does not provide")]
    Link {
        plugin: String,
        #[source]
        source: wasmtime::Error,
    },
    #[error("plugin {plugin:?} is not a valid WebAssembly component")]
    Compile {
        plugin: String,
        #[source]
        source: wasmtime::Error,
    },
    #[error("no built-in log driver named {name:?} (built in: {known})")]
    UnknownDriver { name: String, known: String },
    #[error(
        "plugin {name:?} not found (built-in network drivers: {known}; install others with burrow plugin install)"
    )]
    UnknownNetworkDriver { name: String, known: String },
    #[error("plugin compile cache {path}: {what}")]
    Cache {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the installed plugin {path}: install it again (burrow plugin install)")]
    Installed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the plugin engine")]
    Engine(#[source] wasmtime::Error),
    #[error("cannot give log driver {plugin:?} its log directory {path}")]
    Io {
        plugin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the user (or burrow, for built-ins) allows a plugin; an instance gets the
/// intersection of this with what the plugin's `describe()` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub log_dir: bool,
    pub network: bool,
    pub http: bool,
    pub secrets: Vec<String>,
}

impl Grants {
    /// Everything a plugin may ask for: what built-in plugins get.
    pub fn all() -> Self {
        Grants {
            log_dir: true,
            network: true,
            http: true,
            secrets: vec!["aws".into()],
        }
    }
}

/// The container a logger or reader serves.
#[derive(Debug, Clone)]
pub struct LogContext {
    pub container: Container,
    /// The driver's options (the host already removed mode, max-buffer-size, cache-*).
    pub opts: Vec<(String, String)>,
    /// The container's log directory, preopened as `/logs` when the plugin was granted it.
    pub log_dir: Option<PathBuf>,
}

/// One per process: the engine, the compile cache and the built-in plugins.
pub struct PluginHost {
    shared: Arc<Shared>,
    loaded: Mutex<HashMap<String, LogDriver>>,
}

impl PluginHost {
    /// `cache_dir` holds compiled components (`$XDG_CACHE_HOME/burrow/wasm`, see
    /// [`default_cache_dir`]); it is created 0700.
    pub fn new(cache_dir: PathBuf) -> Result<Self, PluginError> {
        Ok(PluginHost {
            shared: Arc::new(Shared::new(cache_dir)?),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// Names of the built-in log drivers, e.g. "json-file".
    pub fn builtin_names(&self) -> Vec<String> {
        builtin::names("log-")
    }

    /// A built-in log driver, compiled (or loaded from the cache) on first use.
    pub fn log_driver(&self, name: &str) -> Result<LogDriver, PluginError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = loaded.get(name) {
            return Ok(d.clone());
        }
        let krate = format!("log-{name}");
        let Some(wasm) = builtin::component(&krate) else {
            return Err(PluginError::UnknownDriver {
                name: name.into(),
                known: self.builtin_names().join(", "),
            });
        };
        let driver = self.load_log_driver_as(&krate, wasm, Grants::all())?;
        if driver.info().name != name {
            tracing::warn!(krate, described = %driver.info().name, "built-in plugin describes itself under another name");
        }
        loaded.insert(name.to_string(), driver.clone());
        Ok(driver)
    }

    /// Any log driver component (installed plugins, tests), labelled by its digest.
    pub fn load_log_driver(&self, wasm: &[u8], grants: Grants) -> Result<LogDriver, PluginError> {
        let label = format!("sha256:{}", &hex::encode(Sha256::digest(wasm))[..12]);
        self.load_log_driver_as(&label, wasm, grants)
    }

    /// Like [`Self::load_log_driver`], with `label` naming the plugin in errors until its
    /// `describe()` is known.
    pub fn load_log_driver_as(
        &self,
        label: &str,
        wasm: &[u8],
        grants: Grants,
    ) -> Result<LogDriver, PluginError> {
        let component = self.shared.component(label, wasm)?;
        check_world(&self.shared.engine, &component, label, "logging")?;
        let pre = self.shared.instance_pre(&component, label)?;
        self.shared.start_ticker();
        let (info, can_read) = instance::describe(&self.shared, &pre, label)?;
        Ok(LogDriver {
            inner: Arc::new(DriverInner {
                shared: self.shared.clone(),
                pre,
                info,
                can_read,
                grants,
            }),
        })
    }

    /// How many components this host compiled (rather than loaded from the cache).
    #[cfg(test)]
    pub fn compile_count(&self) -> u64 {
        self.shared
            .compiles
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// `$XDG_CACHE_HOME/burrow/wasm`, else `~/.cache/burrow/wasm`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("burrow").join("wasm"))
}

/// Refuses a component that does not export `burrow:plugin/IFACE@1.x` (`logging` or
/// `networking`), naming what it exports instead.
fn check_world(
    engine: &wasmtime::Engine,
    component: &Component,
    label: &str,
    want: &'static str,
) -> Result<(), PluginError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let mut found = None;
    for name in &exports {
        let Some(rest) = name.strip_prefix("burrow:plugin/") else {
            continue;
        };
        let (iface, version) = rest.split_once('@').unwrap_or((rest, "0.0.0"));
        let major = version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u64>().ok());
        if iface == want && major == Some(SUPPORTED_MAJOR) {
            return Ok(());
        }
        if iface == "logging" || iface == "networking" {
            found.get_or_insert((iface.to_string(), version.to_string()));
        }
    }
    match found {
        Some((iface, version)) if iface == want => Err(PluginError::Incompatible {
            plugin: label.into(),
            found: format!("burrow:plugin@{version}"),
        }),
        _ => Err(PluginError::WrongKind {
            plugin: label.into(),
            kind: if want == "logging" {
                "log driver"
            } else {
                "network driver"
            },
            iface: want,
            exports: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
        }),
    }
}

/// A log driver ready to instantiate: cheap to clone.
#[derive(Clone)]
pub struct LogDriver {
    inner: Arc<DriverInner>,
}

struct DriverInner {
    shared: Arc<Shared>,
    pre: bindings::LogDriverPre<state::HostState>,
    info: PluginInfo,
    can_read: bool,
    grants: Grants,
}

impl LogDriver {
    /// What `describe()` returned at load.
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }

    /// Runs the plugin's `validate`: `Err(PluginError::Config(msg))` carries its message.
    pub fn validate(&self, opts: &[(String, String)]) -> Result<(), PluginError> {
        instance::validate(self, opts)
    }

    /// True when the plugin can read back what it logged (`burrow logs` without a cache).
    pub fn can_read(&self) -> bool {
        self.inner.can_read
    }

    pub fn open_logger(&self, ctx: LogContext) -> Result<Logger, PluginError> {
        Logger::open(self.clone(), ctx)
    }

    pub fn open_reader(&self, ctx: LogContext, ro: ReadOpts) -> Result<Reader, PluginError> {
        Reader::open(self.clone(), ctx, ro)
    }

    fn name(&self) -> &str {
        &self.inner.info.name
    }

    /// What an instance serving `ctx` may use.
    fn policy(&self, ctx: &LogContext, reader: bool) -> Policy {
        Policy::new(
            &self.inner.info.needs,
            &self.inner.grants,
            &ctx.opts,
            reader,
        )
    }
}

impl std::fmt::Debug for LogDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDriver")
            .field("info", &self.inner.info)
            .field("grants", &self.inner.grants)
            .finish()
    }
}
