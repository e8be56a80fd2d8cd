//! Installed plugins (`burrow plugin install|ls|inspect|rm|enable|disable`): each is kept
//! as `DATA/plugins/NAME/plugin.wasm` with `plugin.json` (its kind, what it asks for, what
//! the user granted, whether it is enabled). A log driver is used through `--log-driver
//! NAME`, a network driver through `network create --driver NAME`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::logconfig::{LogConfig, LogRefusal};
use super::networks::NetworkRefusal;
use super::{EngineError, Paths, PluginSlot, Result};
use crate::plugin::{Capabilities, Grants, LogDriver, PluginError};
use crate::state::State;

/// What the engine refuses about installing, changing or removing a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginRefusal {
    #[error("plugin record {} is damaged: remove the plugin and install it again", path.display())]
    Damaged {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{} is neither a log driver nor a network driver: it exports {exports} (plugin {plugin:?}; build it with burrow-plugin-sdk)",
        path.display()
    )]
    NotADriver {
        path: PathBuf,
        plugin: String,
        exports: String,
    },
    #[error("invalid plugin name {0:?}: use letters, digits, '-', '_' and '.' (or --alias)")]
    BadName(String),
    #[error(
        "plugin name {name:?} is a built-in {what}'s: install it under another name with --alias"
    )]
    BuiltinName { name: String, what: &'static str },
    #[error("plugin {0:?} is already installed (burrow plugin rm {0} first)")]
    Installed(String),
    #[error("plugin {0:?} is not installed (burrow plugin ls lists them)")]
    NotInstalled(String),
    #[error("plugin {name:?} is in use by {what} {by}: remove the {what} first, or use --force")]
    InUse {
        name: String,
        what: &'static str,
        by: String,
    },
}

/// The capabilities of the WIT `capabilities` record, as users grant them.
pub const CAPABILITIES: [&str; 4] = ["log-dir", "network", "http", "secrets"];

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrantSet {
    pub log_dir: bool,
    pub network: bool,
    pub http: bool,
    pub secrets: Vec<String>,
}

impl GrantSet {
    /// What a plugin's `describe()` asks for.
    pub fn asked(needs: &Capabilities) -> GrantSet {
        GrantSet {
            log_dir: needs.log_dir,
            network: needs.network,
            http: needs.http,
            secrets: needs.secrets.clone(),
        }
    }

    /// The capability names in this set.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.log_dir, "log-dir"),
            (self.network, "network"),
            (self.http, "http"),
            (!self.secrets.is_empty(), "secrets"),
        ] {
            if on {
                out.push(name);
            }
        }
        out
    }

    /// What `asked` gets when the user granted the capabilities named in `granted`.
    pub fn grant(asked: &GrantSet, granted: &[String]) -> GrantSet {
        let has = |n: &str| granted.iter().any(|g| g == n);
        GrantSet {
            log_dir: asked.log_dir && has("log-dir"),
            network: asked.network && has("network"),
            http: asked.http && has("http"),
            secrets: if has("secrets") {
                asked.secrets.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// Which world a plugin's component implements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// `log-driver` (records from before network plugins have no kind: they are these).
    #[default]
    Log,
    /// `network-driver`: computes plans, asks for nothing (its world imports only `diag`).
    Network,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstalledPlugin {
    pub name: String,
    #[serde(default)]
    pub kind: PluginKind,
    pub digest: String,
    pub version: String,
    pub description: String,
    pub enabled: bool,
    pub asks: GrantSet,
    pub granted: GrantSet,
    /// The addresses and URL patterns it asked for, shown at install.
    pub default_addresses: Vec<String>,
    pub http_patterns: Vec<String>,
}

impl InstalledPlugin {
    pub fn grants(&self) -> Grants {
        Grants {
            log_dir: self.granted.log_dir,
            network: self.granted.network,
            http: self.granted.http,
            secrets: self.granted.secrets.clone(),
        }
    }
}

/// A plugin read for installation, before the user agreed.
pub struct Candidate {
    pub plugin: InstalledPlugin,
    wasm: Vec<u8>,
}

/// Installed plugins, and the drivers containers and networks use (installed or built in).
#[derive(Clone, Copy)]
pub struct Plugins<'e> {
    pub(super) paths: &'e Paths,
    pub(super) state: &'e State,
    pub(super) slot: &'e PluginSlot,
}

impl Plugins<'_> {
    fn plugins_dir(&self) -> PathBuf {
        self.paths.data.join("plugins")
    }

    pub(super) fn wasm_path(&self, name: &str) -> PathBuf {
        self.plugins_dir().join(name).join("plugin.wasm")
    }

    fn plugin_record_path(&self, name: &str) -> PathBuf {
        self.plugins_dir().join(name).join("plugin.json")
    }

    /// The installed plugin `name`, if there is one.
    pub(super) fn installed(&self, name: &str) -> Result<Option<InstalledPlugin>> {
        if !valid_name(name) {
            return Ok(None);
        }
        let path = self.plugin_record_path(name);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| PluginRefusal::Damaged { path, source }.into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EngineError::Io {
                what: "read",
                path,
                source,
            }),
        }
    }

    /// Every installed plugin, by name.
    pub fn list(&self) -> Result<Vec<InstalledPlugin>> {
        let dir = self.plugins_dir();
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => {
                return Err(EngineError::Io {
                    what: "list",
                    path: dir,
                    source,
                });
            }
        };
        for e in entries.flatten() {
            if let Some(p) = self.installed(&e.file_name().to_string_lossy())? {
                out.push(p);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Loads a component for installation: checks its world and version and asks it what
    /// it needs, in a sandbox with nothing granted.
    pub fn candidate(&self, path: &Path, alias: Option<&str>) -> Result<Candidate> {
        let wasm = std::fs::read(path).map_err(|source| EngineError::Io {
            what: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let host = self.slot.host()?;
        let (kind, info) = match host.load_log_driver(&wasm, Grants::default()) {
            Ok(driver) => (PluginKind::Log, driver.info().clone()),
            Err(PluginError::WrongKind { .. }) => match host.load_network_driver(&wasm) {
                Ok(driver) => (PluginKind::Network, driver.info().clone()),
                Err(PluginError::WrongKind {
                    plugin, exports, ..
                }) => {
                    return Err(PluginRefusal::NotADriver {
                        path: path.to_path_buf(),
                        plugin,
                        exports,
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        let name = alias.unwrap_or(&info.name).to_string();
        if !valid_name(&name) {
            return Err(PluginRefusal::BadName(name).into());
        }
        let builtin = match kind {
            PluginKind::Log => host.builtin_names(),
            PluginKind::Network => host.builtin_network_drivers(),
        };
        if builtin.contains(&name) {
            let what = match kind {
                PluginKind::Log => "log driver",
                PluginKind::Network => "network driver",
            };
            return Err(PluginRefusal::BuiltinName { name, what }.into());
        }
        if self.installed(&name)?.is_some() {
            return Err(PluginRefusal::Installed(name).into());
        }
        // A network driver's world imports nothing that grants could open: it asks for nothing.
        let needs = match kind {
            PluginKind::Log => info.needs.clone(),
            PluginKind::Network => Capabilities {
                log_dir: false,
                network: false,
                default_addresses: vec![],
                http_patterns: vec![],
                http: false,
                secrets: vec![],
            },
        };
        Ok(Candidate {
            plugin: InstalledPlugin {
                name,
                kind,
                digest: format!("sha256:{}", hex::encode(Sha256::digest(&wasm))),
                version: info.version.clone(),
                description: info.description.clone(),
                enabled: true,
                granted: GrantSet::default(),
                asks: GrantSet::asked(&needs),
                default_addresses: needs.default_addresses,
                http_patterns: needs.http_patterns,
            },
            wasm,
        })
    }

    /// Stores a candidate with what the user granted.
    pub fn install(&self, mut c: Candidate, granted: GrantSet) -> Result<InstalledPlugin> {
        c.plugin.granted = granted;
        let dir = self.plugins_dir().join(&c.plugin.name);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EngineError::Io {
                what: "install the plugin into",
                path,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let wasm = self.wasm_path(&c.plugin.name);
        super::lock::write_atomic(&wasm, &c.wasm)?;
        self.write_record(&c.plugin)?;
        Ok(c.plugin)
    }

    fn write_record(&self, p: &InstalledPlugin) -> Result<()> {
        let path = self.plugin_record_path(&p.name);
        let json = serde_json::to_vec_pretty(p).expect("plugin records serialise");
        super::lock::write_atomic(&path, &json)
    }

    fn named(&self, name: &str) -> Result<InstalledPlugin> {
        self.installed(name)?
            .ok_or_else(|| PluginRefusal::NotInstalled(name.to_string()).into())
    }

    pub fn inspect(&self, name: &str) -> Result<InstalledPlugin> {
        self.named(name)
    }

    /// Enables or disables a plugin; a plugin containers use stays enabled.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        if let Some(by) = self.users(name)?.filter(|_| !enabled) {
            return Err(in_use(name, by));
        }
        self.set_enabled_forced(name, enabled)
    }

    pub fn set_enabled_forced(&self, name: &str, enabled: bool) -> Result<()> {
        let mut p = self.named(name)?;
        p.enabled = enabled;
        self.write_record(&p)
    }

    /// A container that logs through plugin `name`, else a network it is the driver of, as
    /// ("container" or "network", its name); None when nothing uses it.
    fn users(&self, name: &str) -> Result<Option<(&'static str, String)>> {
        let records = super::Records {
            paths: self.paths,
            state: self.state,
        };
        for c in self.state.containers()? {
            if records.config(&c)?.log.driver == name {
                return Ok(Some(("container", c.name)));
            }
        }
        // The predefined networks use built-in drivers, which no plugin can be named after.
        for n in self.state.networks()? {
            if n.driver == name {
                return Ok(Some(("network", n.name)));
            }
        }
        Ok(None)
    }

    /// The log driver `name`: an installed plugin of that name, else a built-in one.
    pub(super) fn log_driver(&self, name: &str) -> Result<LogDriver> {
        if let Some(p) = self.installed(name)? {
            if p.kind != PluginKind::Log {
                return Err(LogRefusal::NotALogDriver(name.to_string()).into());
            }
            if !p.enabled {
                return Err(LogRefusal::DriverDisabled(name.to_string()).into());
            }
            let path = self.wasm_path(name);
            let wasm = std::fs::read(&path).map_err(|source| EngineError::Io {
                what: "read",
                path,
                source,
            })?;
            return Ok(self
                .slot
                .host()?
                .load_log_driver_as(name, &wasm, p.grants())?);
        }
        match self.slot.host()?.log_driver(name) {
            Err(PluginError::UnknownDriver { .. }) => {
                Err(LogRefusal::UnknownDriver(name.to_string()).into())
            }
            other => Ok(other?),
        }
    }

    /// Checks `log` as `create` must: the host's options, then the driver's own.
    pub(super) fn check_log_config(&self, log: &LogConfig) -> Result<()> {
        let split = log.split()?;
        let driver = self.log_driver(&log.driver)?;
        match driver.validate(&split.driver_opts) {
            Err(PluginError::Config(message)) => Err(LogRefusal::Driver {
                driver: log.driver.clone(),
                message,
            }
            .into()),
            other => Ok(other?),
        }
    }

    /// Where the component of network driver `name` is, when it is an installed plugin;
    /// None for a built-in driver or no driver of that name. A disabled plugin, or a log
    /// driver of that name, is an error.
    pub(super) fn network_plugin(&self, name: &str) -> Result<Option<PathBuf>> {
        if crate::plugin::is_builtin_network_driver(name) {
            return Ok(None);
        }
        match self.installed(name)? {
            None => Ok(None),
            Some(p) if p.kind != PluginKind::Network => Err(NetworkRefusal::NotANetworkDriver {
                name: name.to_string(),
            }
            .into()),
            Some(p) if !p.enabled => Err(NetworkRefusal::PluginDisabled {
                name: name.to_string(),
            }
            .into()),
            Some(_) => Ok(Some(self.wasm_path(name))),
        }
    }

    /// The plugin host, started on first use.
    pub(super) fn host(&self) -> Result<&crate::plugin::PluginHost> {
        self.slot.host()
    }

    /// Where compiled plugins are cached.
    pub(super) fn cache_dir(&self) -> PathBuf {
        self.slot.cache_dir().to_path_buf()
    }

    /// Removes a plugin; a plugin containers use stays unless `force`.
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        let p = self.named(name)?;
        if let Some(by) = self.users(name)?.filter(|_| !force) {
            return Err(in_use(name, by));
        }
        let dir = self.plugins_dir().join(&p.name);
        std::fs::remove_dir_all(&dir).map_err(|source| EngineError::Io {
            what: "remove",
            path: dir,
            source,
        })
    }
}

fn in_use(name: &str, (what, by): (&'static str, String)) -> EngineError {
    PluginRefusal::InUse {
        name: name.to_string(),
        what,
        by,
    }
    .into()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_what_was_asked_and_granted() {
        let asked = GrantSet {
            log_dir: true,
            network: true,
            http: false,
            secrets: vec!["aws".into()],
        };
        assert_eq!(asked.names(), ["log-dir", "network", "secrets"]);
        let g = GrantSet::grant(&asked, &["network".into(), "http".into()]);
        assert_eq!(g.names(), ["network"]);
        assert!(!g.http, "not asked, so not given");
        assert!(valid_name("my-driver_1.0"));
        assert!(!valid_name("../x") && !valid_name("") && !valid_name(".hidden"));
    }

    #[test]
    fn records_without_a_kind_are_log_drivers() {
        let old = r#"{"name":"lines","digest":"sha256:ab","version":"0.1.0","description":"",
            "enabled":true,"asks":{"log_dir":true,"network":false,"http":false,"secrets":[]},
            "granted":{"log_dir":true,"network":false,"http":false,"secrets":[]},
            "default_addresses":[],"http_patterns":[]}"#;
        let p: InstalledPlugin = serde_json::from_str(old).unwrap();
        assert_eq!(p.kind, PluginKind::Log);
        let json = serde_json::to_value(InstalledPlugin {
            kind: PluginKind::Network,
            ..p
        })
        .unwrap();
        assert_eq!(json["kind"], "network");
    }
}
