//! Containers: create, remove, list; starting, stopping and the other lifecycle commands
//! (lifecycle.rs, run.rs); their logs, inspect output, attach and exec. The per-container
//! processes themselves (monitor loop, stdio relay, health prober) live in `crate::monitor`;
//! the entry points here hand them what they need of the engine.

mod attach;
mod inspect;
mod lifecycle;
mod logs;
mod probe;
mod run;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::config::{GlobalOptions, Paths};
use super::handles::{Ids, StorageSlot, Warnings};
use super::images::Images;
use super::lock::{FileLock, write_replace_unsynced};
use super::networks::{NetworkInfo, NetworkRefusal, Networks};
use super::plugins::Plugins;
use super::records::Records;
use super::spec::{self, ContainerConfig, CreateOptions, ImageRunConfig};
use super::{EngineError, Result, names, now_unix, random_id};
use crate::image::registry::Progress;
use crate::network::ports;
use crate::state::{self, ContainerRecord, State};
use crate::storage::Storage;

pub use attach::RelayArgs;
pub use lifecycle::ExecOptions;
pub use logs::{LogLine, LogsOptions};
pub use run::{MonitorArgs, report_monitor_failure};

pub const CREATED: &str = "created";
pub const RUNNING: &str = "running";
pub const EXITED: &str = "exited";
/// Status while the monitor waits out the restart delay.
pub const RESTARTING: &str = "restarting";

#[derive(Debug, Clone, Copy, Default)]
pub struct RemoveOptions {
    pub force: bool,
}

/// One row of `ps`.
#[derive(Debug, Clone)]
pub struct ContainerSummary {
    pub record: ContainerRecord,
    pub config: ContainerConfig,
}

/// Containers: everything from `create` to `rm`. Holds the services it calls.
#[derive(Clone, Copy)]
pub struct Containers<'e> {
    pub(super) paths: &'e Paths,
    pub(super) global: &'e GlobalOptions,
    pub(super) state: &'e State,
    pub(super) storage: &'e StorageSlot,
    pub(super) ids: &'e Ids,
    pub(super) warnings: &'e Warnings,
    pub(super) records: Records<'e>,
    pub(super) images: Images<'e>,
    pub(super) networks: Networks<'e>,
    pub(super) plugins: Plugins<'e>,
}

impl Containers<'_> {
    /// The storage driver (detected on first use).
    fn driver(&self) -> Result<&Storage> {
        self.storage.get(self.ids, self.warnings)
    }

    /// Finds one container by name, id or unique id prefix (see [`Records::find`]).
    pub fn find(&self, key: &str) -> Result<ContainerRecord> {
        self.records.find(key)
    }

    /// `create`: resolves (or pulls) the image, records the container, prepares its rootfs.
    pub fn create(&self, opts: &CreateOptions, progress: &dyn Progress) -> Result<String> {
        crate::timing::mark("create:begin");
        let pull = super::PullOptions {
            tls_verify: opts.tls_verify,
            platform: opts.platform.clone(),
        };
        let image = self.images.for_run(&opts.image, &pull, progress)?;
        let image_config = self.images.config(&image)?;
        let run_config: ImageRunConfig = image_config
            .get("config")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|source| EngineError::ImageConfig {
                image: opts.image.clone(),
                source,
            })?
            .unwrap_or_default();

        let id = random_id()?;
        let _span = tracing::info_span!("create", container = %&id[..12]).entered();
        if let Some(name) = &opts.name {
            if !names::valid(name) {
                return Err(EngineError::BadName(name.clone()));
            }
        }
        let driver = self.images.storage_driver()?;
        let host_hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        let mut config = spec::merge(&run_config, opts, &id, &host_hostname, &driver, &|k| {
            std::env::var(k).ok()
        })?;
        self.plugins.check_log_config(&config.log)?;
        if config.network == "host" && (!opts.publish.is_empty() || opts.publish_all) {
            // Docker's warning: the ports are the host's own already.
            self.warnings
                .push("published ports are discarded when using host network mode");
        }
        let network = self.networks.container_network(&config.network)?;
        if let Some(n) = &network {
            config.network = n.record.name.clone();
        }
        // container:NAME: the other container's id, hostname and name files.
        let shared_with = match config.network.strip_prefix("container:") {
            Some(key) => {
                let other = self.records.find(key)?;
                if self.records.config(&other)?.network == "host" {
                    return Err(NetworkRefusal::SharesHostNetwork {
                        container: other.name.clone(),
                    }
                    .into());
                }
                config.network = format!("container:{}", other.id);
                config.hostname = self.records.config(&other)?.hostname;
                Some(other.id)
            }
            None => None,
        };
        let requested_ip = super::networks::check_network_flags(&config, network.as_ref())?;
        if network
            .as_ref()
            .is_some_and(|n| n.record.driver == "macvlan")
            && !config.ports.is_empty()
        {
            // The container is on the parent's LAN itself, with its own address.
            self.warnings
                .push("published ports are discarded on macvlan networks: reach the container at its own address");
        }
        let name = match &opts.name {
            Some(n) => n.clone(),
            None => {
                let existing: Vec<String> = self
                    .state
                    .containers()?
                    .into_iter()
                    .map(|c| c.name)
                    .collect();
                names::generate(&id, &|n| existing.iter().any(|e| e == n))
            }
        };
        let record = ContainerRecord {
            id: id.clone(),
            name,
            image_id: image.id.clone(),
            image_name: opts.image.clone(),
            config: serde_json::to_string(&config).expect("config serialises"),
            status: CREATED.into(),
            exit_code: None,
            pid: None,
            created: now_unix(),
            started: None,
            finished: None,
            pid_start: None,
            monitor_pid: None,
            restart_count: 0,
            stop_requested: false,
            error: None,
            health: None,
        };
        // Record first: the unique name and the address are claimed atomically before any
        // file exists.
        let address = self.state.write(|tx| {
            state::insert_container(tx, &record)?;
            network
                .as_ref()
                .map(|n| super::networks::allocate(tx, n, &id, requested_ip))
                .transpose()
        })?;
        let etc = EtcNet {
            host_loopback: network.as_ref().is_some_and(NetworkInfo::host_loopback),
            address,
            resolver: network.as_ref().and_then(NetworkInfo::dns_server),
            links: match self.link_lines(&config, network.as_ref()) {
                Ok(lines) => lines,
                Err(e) => {
                    let _ = self.state.write(|tx| state::remove_container(tx, &id));
                    return Err(e);
                }
            },
        };
        if let Err(e) = self.prepare_container_files(&record, &config, &image, &etc) {
            let _ = self.remove_container_files(&id);
            let _ = self.state.write(|tx| state::remove_container(tx, &id));
            return Err(e);
        }
        if let Some(n) = &network {
            self.networks.refresh_dns(&n.record.id);
        }
        if let Some(other) = shared_with {
            // The same /etc/hosts and /etc/resolv.conf as the container whose network it is.
            let (from, to) = (
                self.paths.container_dir(&other).join("userdata"),
                self.paths.container_dir(&id).join("userdata"),
            );
            for f in ["hosts", "resolv.conf"] {
                if let Err(source) = std::fs::copy(from.join(f), to.join(f)) {
                    let _ = self.remove_container_files(&id);
                    let _ = self.state.write(|tx| state::remove_container(tx, &id));
                    return Err(EngineError::Io {
                        what: "copy",
                        path: from.join(f),
                        source,
                    });
                }
            }
        }
        self.records.event(&record, "create", &[]);
        crate::timing::mark("create:end");
        Ok(id)
    }

    fn prepare_container_files(
        &self,
        record: &ContainerRecord,
        config: &ContainerConfig,
        image: &crate::state::ImageRecord,
        etc: &EtcNet,
    ) -> Result<()> {
        let dir = self.paths.container_dir(&record.id);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EngineError::Io {
                what: "create",
                path,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let userdata = dir.join("userdata");
        std::fs::create_dir_all(&userdata).map_err(io(&userdata))?;
        write_etc_files(&userdata, config, etc)?;

        let chain_ids: Vec<String> = image.layers.iter().map(|l| l.chain_id.clone()).collect();
        let _lock = FileLock::exclusive(&self.paths.data.join("storage.lock"))?;
        let storage = self.driver()?.clone();
        let rootfs = if storage.prepare_needs_userns() {
            self.ids.used(self.warnings);
            let rootfs_dir = dir.clone();
            crate::runtime::in_userns(self.ids.map(), move || {
                storage
                    .prepare_rootfs(&rootfs_dir, &chain_ids)
                    .map_err(|e| crate::errors::render_chain(&e))
            })?
        } else {
            storage.prepare_rootfs(&dir, &chain_ids)?
        };
        let rootfs_json = serde_json::to_vec(&rootfs).expect("rootfs serialises");
        write_replace_unsynced(&dir.join("rootfs.json"), &rootfs_json)
    }

    fn remove_container_files(&self, id: &str) -> Result<()> {
        let dir = self.paths.container_dir(id);
        if dir.exists() {
            self.delete_container_dir(&dir)?;
        }
        self.remove_runtime_files(id)
    }

    /// Deletes a container's directory (or one set aside). Most containers only hold files
    /// owned by their root, which is us: they are removed directly, and the user namespace
    /// is entered only for what is left.
    fn delete_container_dir(&self, dir: &Path) -> Result<()> {
        let storage = self.driver()?.clone();
        if let Err(e) = storage.remove_container_files(dir) {
            tracing::debug!(%e, "removing in the user namespace");
            let target = dir.to_path_buf();
            crate::runtime::in_userns(self.ids.map(), move || {
                storage
                    .remove_container_files(&target)
                    .map_err(|e| crate::errors::render_chain(&e))
            })?;
        }
        Ok(())
    }

    /// The container's socket and runtime directory (on the runtime dir's tmpfs: fast).
    fn remove_runtime_files(&self, id: &str) -> Result<()> {
        let _ = std::fs::remove_file(self.records.attach_socket_path(id));
        let run_dir = self.paths.container_run_dir(id);
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir).map_err(|source| EngineError::Io {
                what: "remove",
                path: run_dir,
                source,
            })?;
        }
        Ok(())
    }

    /// `ps -s`: bytes in the container's writable layer, and with the image's below it
    /// (Docker's "virtual" size). Files the user cannot read (owned by a subordinate id
    /// and private) are not counted.
    pub fn size(&self, c: &ContainerRecord) -> (u64, u64) {
        let dir = self.paths.container_dir(&c.id);
        let layer = ["upper", "rootfs"]
            .iter()
            .map(|d| dir.join(d))
            .find(|d| d.is_dir());
        let rw = layer.map_or(0, |d| tree_size(&d));
        let image = self
            .state
            .image(&c.image_id)
            .ok()
            .flatten()
            .map_or(0, |i| i.size);
        (rw, rw + image)
    }

    /// /etc/hosts lines for `--link CONTAINER[:ALIAS]`: the other container's address on the
    /// same network, named by the alias, its name and short id.
    fn link_lines(
        &self,
        config: &ContainerConfig,
        network: Option<&NetworkInfo>,
    ) -> Result<String> {
        let mut lines = String::new();
        for link in &config.dns.links {
            let (key, alias) = link.split_once(':').unwrap_or((link, link));
            let Some(n) = network else {
                return Err(NetworkRefusal::LinkNeedsNetwork.into());
            };
            let other = self.records.find(key)?;
            let address = self
                .state
                .container_allocations(&other.id)?
                .into_iter()
                .find(|(net, _)| *net == n.record.id)
                .map(|(_, a)| a)
                .ok_or_else(|| NetworkRefusal::LinkNotOnNetwork {
                    container: other.name.clone(),
                    network: n.record.name.clone(),
                })?;
            let names: Vec<&str> = [alias, other.name.as_str(), &other.id[..12]]
                .into_iter()
                .fold(Vec::new(), |mut v, name| {
                    if !v.contains(&name) {
                        v.push(name);
                    }
                    v
                });
            lines.push_str(&format!("{address}\t{}\n", names.join(" ")));
        }
        Ok(lines)
    }

    /// The ports a running container publishes, as bound (none once it stopped).
    pub fn published_ports(&self, c: &ContainerRecord) -> Vec<ports::Published> {
        if c.status != RUNNING {
            return vec![];
        }
        std::fs::read(self.paths.container_run_dir(&c.id).join("ports.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn remove(&self, key: &str, opts: RemoveOptions) -> Result<String> {
        let c = self.records.find(key)?;
        let _span = tracing::info_span!("rm", container = %&c.id[..12]).entered();
        // A held lock is the truth about a live container, whatever the status says.
        if c.status == RUNNING || c.status == RESTARTING || self.records.watched(&c.id) {
            if !opts.force {
                return Err(EngineError::ContainerRunning(c.name.clone()));
            }
            self.kill_for_removal(&c)?;
            // A --rm container's monitor removes it itself.
            if self.state.find_containers(&c.id)?.is_empty() {
                return Ok(c.id);
            }
        }
        // A stopped container's relay may still be feeding a slow log driver: it goes too.
        self.end_relay(&c.id);
        self.remove_stopped(&c.id)?;
        self.records.event(&c, "destroy", &[]);
        Ok(c.id)
    }

    /// Removes a container nobody runs (or that the caller itself watched): its files,
    /// then its record.
    pub(super) fn remove_stopped(&self, id: &str) -> Result<()> {
        let aside = self.set_aside(id)?;
        self.purge(aside)
    }

    /// Takes a stopped container out of sight at once: its directory moved aside in one
    /// rename, its runtime files and its record removed. Deleting what was moved aside
    /// ([`Containers::purge`]) takes as long as the disk does (tens of ms for a few files
    /// where the file system discards blocks on delete): a `--rm` container's monitor lets
    /// its client go before that.
    pub(super) fn set_aside(&self, id: &str) -> Result<Option<PathBuf>> {
        let dir = self.paths.container_dir(id);
        let aside = if dir.exists() {
            Some(self.driver()?.set_aside(&dir)?)
        } else {
            None
        };
        self.remove_runtime_files(id)?;
        let networks = self.state.container_allocations(id)?;
        self.state.write(|tx| state::remove_container(tx, id))?;
        for (network, _) in networks {
            self.networks.refresh_dns(&network);
        }
        Ok(aside)
    }

    /// Deletes what [`Containers::set_aside`] moved aside, and what others set aside and
    /// did not live to delete.
    pub(super) fn purge(&self, aside: Option<PathBuf>) -> Result<()> {
        let Some(dir) = aside else { return Ok(()) };
        let abandoned = self.driver()?.abandoned_beside(&dir);
        self.delete_container_dir(&dir)?;
        for other in abandoned {
            if let Err(e) = self.delete_container_dir(&other) {
                tracing::warn!(%e, "cannot delete an abandoned container directory");
            }
        }
        Ok(())
    }

    pub fn list(&self, all: bool) -> Result<Vec<ContainerSummary>> {
        let mut out = Vec::new();
        for c in self.state.containers()? {
            let c = self.records.repair(c)?;
            if !all && c.status != RUNNING && c.status != RESTARTING {
                continue;
            }
            let config = self.records.config(&c)?;
            out.push(ContainerSummary { record: c, config });
        }
        Ok(out)
    }
}

/// Bytes of regular files below `dir`, not following symlinks; unreadable parts skipped.
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// What the container's /etc files say about its network.
struct EtcNet {
    /// Its address on its network.
    address: Option<Ipv4Addr>,
    /// The network's built-in DNS.
    resolver: Option<Ipv4Addr>,
    /// `--link` lines for /etc/hosts.
    links: String,
    /// The network opens the host's loopback (10.0.2.2, `host.containers.internal`).
    host_loopback: bool,
}

/// Where a container on a network that opens the host's loopback reaches it (slirp4netns's
/// host address).
const HOST_LOOPBACK: &str = "10.0.2.2";

/// /etc/hosts, /etc/hostname and /etc/resolv.conf for the container. On a network the
/// hostname names the container's address there (as Docker writes it), else 127.0.1.1;
/// `--link`ed containers follow. With a built-in DNS (on user-defined networks) resolv.conf
/// names it instead of the host's nameservers, unless `--dns` gave others.
fn write_etc_files(dir: &Path, config: &ContainerConfig, etc: &EtcNet) -> Result<()> {
    let (address, resolver) = (etc.address, etc.resolver);
    let host = config.network == "host";
    let hostname = format!("{}\n", config.hostname);
    let own = address.map_or_else(|| "127.0.1.1".to_string(), |a| a.to_string());
    let hosts = config.dns.hosts(&if host {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        let host_names = if etc.host_loopback {
            format!("{HOST_LOOPBACK}\thost.containers.internal host.docker.internal\n")
        } else {
            String::new()
        };
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}\t{}\n{}{host_names}",
            config.hostname, etc.links
        )
    }, if host { "127.0.0.1" } else { HOST_LOOPBACK });
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let base = match resolver {
        Some(ip) => std::iter::once(format!("nameserver {ip}"))
            .chain(
                host_resolv
                    .lines()
                    .filter(|l| l.split_whitespace().next() != Some("nameserver"))
                    .map(str::to_string),
            )
            .map(|l| l + "\n")
            .collect(),
        None => host_resolv,
    };
    let resolv = config.dns.resolv_conf(&base);
    write_replace_unsynced(&dir.join("hostname"), hostname.as_bytes())?;
    write_replace_unsynced(&dir.join("hosts"), hosts.as_bytes())?;
    write_replace_unsynced(&dir.join("resolv.conf"), resolv.as_bytes())
}
