//! Container operations: create, start (foreground), remove, list.
//!
//! A foreground `start` holds an exclusive lock on the container's `lock` file for as
//! long as the container runs, so any other burrow can tell a live container from one
//! whose burrow died (the lock vanishes with the process) without trusting a pid.

use std::net::Ipv4Addr;
use std::path::Path;

use super::lock::{FileLock, write_replace_unsynced};
use super::network::NetworkInfo;
use super::spec::{self, ContainerConfig, CreateOptions, ImageRunConfig};
use super::{Engine, EngineError, Result, names, now_unix, random_id};
use crate::image::registry::Progress;
use crate::network::holder::Holder;
use crate::network::ports;
use crate::runtime::{ContainerSpec, NetworkMode};
use crate::state::{self, ContainerRecord};

pub const CREATED: &str = "created";
pub const RUNNING: &str = "running";
pub const EXITED: &str = "exited";

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

impl Engine {
    /// `create`: resolves (or pulls) the image, records the container, prepares its rootfs.
    pub fn create(&mut self, opts: &CreateOptions, progress: &dyn Progress) -> Result<String> {
        let pull = super::PullOptions {
            tls_verify: opts.tls_verify,
            platform: opts.platform.clone(),
        };
        let image = self.image_for_run(&opts.image, &pull, progress)?;
        let image_config = self.image_config(&image)?;
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
        let driver = self.storage_driver_name()?;
        let host_hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        let mut config = spec::merge(&run_config, opts, &id, &host_hostname, &driver, &|k| {
            std::env::var(k).ok()
        })?;
        self.check_log_config(&config.log)?;
        if config.network == "host" && (!opts.publish.is_empty() || opts.publish_all) {
            // Docker's warning: the ports are the host's own already.
            self.warnings
                .push("published ports are discarded when using host network mode".into());
        }
        let network = self.container_network(&config.network)?;
        if let Some(n) = &network {
            config.network = n.record.name.clone();
        }
        // container:NAME: the other container's id, hostname and name files.
        let shared_with = match config.network.strip_prefix("container:") {
            Some(key) => {
                let other = self.find_container(key)?;
                if self.container_config(&other)?.network == "host" {
                    return Err(EngineError::NetworkConfig(format!(
                        "container {} uses the host's network: give --network host instead",
                        other.name
                    )));
                }
                config.network = format!("container:{}", other.id);
                config.hostname = self.container_config(&other)?.hostname;
                Some(other.id)
            }
            None => None,
        };
        let requested_ip = super::network::check_network_flags(&config, network.as_ref())?;
        if network
            .as_ref()
            .is_some_and(|n| n.record.driver == "macvlan")
            && !config.ports.is_empty()
        {
            // The container is on the parent's LAN itself, with its own address.
            self.warnings
                .push("published ports are discarded on macvlan networks: reach the container at its own address".into());
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
                .map(|n| super::network::allocate(tx, n, &id, requested_ip))
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
            self.refresh_dns(&n.record.id);
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
                        path: from.join(f),
                        source,
                    });
                }
            }
        }
        self.container_event(&record, "create", &[]);
        Ok(id)
    }

    fn prepare_container_files(
        &mut self,
        record: &ContainerRecord,
        config: &ContainerConfig,
        image: &crate::state::ImageRecord,
        etc: &EtcNet,
    ) -> Result<()> {
        let dir = self.paths.container_dir(&record.id);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EngineError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let userdata = dir.join("userdata");
        std::fs::create_dir_all(&userdata).map_err(io(&userdata))?;
        write_etc_files(&userdata, config, etc)?;

        let chain_ids: Vec<String> = image.layers.iter().map(|l| l.chain_id.clone()).collect();
        let _lock = FileLock::exclusive(&self.paths.data.join("storage.lock"))?;
        let storage = self.storage()?.clone();
        let rootfs = if storage.prepare_needs_userns() {
            self.idmap_used();
            let rootfs_dir = dir.clone();
            crate::runtime::in_userns(&self.idmap, move || {
                storage
                    .prepare_rootfs(&rootfs_dir, &chain_ids)
                    .map_err(|e| super::image::error_chain(&e))
            })?
        } else {
            storage.prepare_rootfs(&dir, &chain_ids)?
        };
        let rootfs_json = serde_json::to_vec(&rootfs).expect("rootfs serialises");
        write_replace_unsynced(&dir.join("rootfs.json"), &rootfs_json)
    }

    fn remove_container_files(&mut self, id: &str) -> Result<()> {
        let dir = self.paths.container_dir(id);
        if dir.exists() {
            let storage = self.storage()?.clone();
            // Most containers only hold files owned by their root, which is us: remove
            // them directly, and enter the user namespace only for what is left.
            if let Err(e) = storage.remove_container_files(&dir) {
                tracing::debug!(%e, "removing in the user namespace");
                let target = dir.clone();
                crate::runtime::in_userns(&self.idmap, move || {
                    storage
                        .remove_container_files(&target)
                        .map_err(|e| super::image::error_chain(&e))
                })?;
            }
        }
        let _ = std::fs::remove_file(self.attach_socket_path(id));
        let run_dir = self.paths.container_run_dir(id);
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir).map_err(|source| EngineError::Io {
                path: run_dir,
                source,
            })?;
        }
        Ok(())
    }

    /// Finds one container by name, id or unique id prefix, repairing a stale "running"
    /// status left by a burrow that died.
    pub fn find_container(&mut self, key: &str) -> Result<ContainerRecord> {
        let mut found = self.state.find_containers(key)?;
        match found.len() {
            0 => Err(EngineError::NoSuchContainer(key.to_string())),
            1 => {
                let c = found.remove(0);
                self.repair(c)
            }
            n => Err(EngineError::Ambiguous {
                key: key.into(),
                count: n,
                what: "container",
            }),
        }
    }

    /// A container recorded as running whose lock is free lost its monitor (or its
    /// foreground burrow): its processes died with it (they are tied to their parent), so
    /// record the truth. A pid is only signalled while its start time still matches, so a
    /// pid the kernel reused is never touched.
    pub(super) fn repair(&mut self, mut c: ContainerRecord) -> Result<ContainerRecord> {
        if c.status != RUNNING && c.status != super::RESTARTING {
            return Ok(c);
        }
        if self.watched(&c.id) {
            return Ok(c);
        }
        tracing::warn!(container = %c.id, "the container's monitor is gone; marking it exited");
        if let Some(pid) = c
            .pid
            .filter(|p| crate::runtime::proc::is_same_process(*p, c.pid_start))
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        c.status = EXITED.into();
        c.exit_code = Some(137);
        c.error = Some("the container's monitor died; the container was killed with it".into());
        c.finished = Some(now_unix());
        c.pid = None;
        c.pid_start = None;
        c.monitor_pid = None;
        self.state.write(|tx| state::update_container(tx, &c))?;
        Ok(c)
    }

    /// `ps -s`: bytes in the container's writable layer, and with the image's below it
    /// (Docker's "virtual" size). Files the user cannot read (owned by a subordinate id
    /// and private) are not counted.
    pub fn container_size(&self, c: &ContainerRecord) -> (u64, u64) {
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
        &mut self,
        config: &ContainerConfig,
        network: Option<&NetworkInfo>,
    ) -> Result<String> {
        let mut lines = String::new();
        for link in &config.dns.links {
            let (key, alias) = link.split_once(':').unwrap_or((link, link));
            let Some(n) = network else {
                return Err(EngineError::NetworkConfig(
                    "--link needs a bridge network: give --network bridge or a network's name"
                        .into(),
                ));
            };
            let other = self.find_container(key)?;
            let address = self
                .state
                .container_allocations(&other.id)?
                .into_iter()
                .find(|(net, _)| *net == n.record.id)
                .map(|(_, a)| a)
                .ok_or_else(|| {
                    EngineError::NetworkConfig(format!(
                        "cannot link to {}: it is not on network {}",
                        other.name, n.record.name
                    ))
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

    pub fn container_config(&self, c: &ContainerRecord) -> Result<ContainerConfig> {
        serde_json::from_str(&c.config).map_err(|source| {
            EngineError::State(crate::state::StateError::Corrupt {
                what: "container",
                id: c.id.clone(),
                source,
            })
        })
    }

    /// Runs the container once and records it: running, then its pid once its command
    /// runs (`started` is called then too), then its exit status. Returns the runtime's
    /// outcome. The caller holds the container's lock.
    pub(super) fn run_recorded(
        &mut self,
        c: &mut ContainerRecord,
        config: &ContainerConfig,
        started: &mut dyn FnMut(&ContainerRecord),
    ) -> Result<std::result::Result<i32, crate::runtime::RuntimeError>> {
        let mut spec = self.runtime_spec(c, config)?;
        // `network connect`/`disconnect` wait until the container runs with these endpoints.
        let mut network_lock = Some(self.network_lock(&c.id)?);
        let endpoints = self.endpoints(c, config)?;
        let holder = if endpoints.is_empty() {
            None
        } else {
            let h = self.holder()?;
            spec.userns = Some(h.userns());
            spec.network = NetworkMode::Attached;
            Some(h)
        };
        // Published ports: bound here (host side, as the user), forwarded by the holder
        // while `_ports` stays open.
        let ports_file = self.paths.container_run_dir(&c.id).join("ports.json");
        let _ports = match (&holder, endpoints.first()) {
            // On the holder's side of the first network (bridge, or a network plugin's).
            (Some(_), Some(e)) if !config.ports.is_empty() && e.in_holder() => {
                let target = e
                    .attach
                    .ips
                    .first()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
                let bound = ports::bind(&config.ports)
                    .map_err(|e| EngineError::NetworkConfig(e.to_string()))?;
                let control = Holder::control(&self.paths.runtime.join("network"));
                let stream = ports::hand_over(&control, &bound, target)
                    .map_err(|e| EngineError::NetworkConfig(e.to_string()))?;
                let published: Vec<ports::Published> = bound.into_iter().map(|(p, _)| p).collect();
                write_replace_unsynced(
                    &ports_file,
                    &serde_json::to_vec(&published).expect("ports serialise"),
                )?;
                Some(stream)
            }
            _ => None,
        };
        if let Some(key) = config.network.strip_prefix("container:") {
            let other = self.find_container(key)?;
            let name = other.name.clone();
            let pid = self.pid_if_running(other)?.ok_or_else(|| {
                EngineError::NetworkConfig(format!(
                    "cannot join network of a non running container: {name} (start it first)"
                ))
            })?;
            let pid = crate::runtime::namespace_anchor(pid)?;
            spec.userns = Some(format!("/proc/{pid}/ns/user").into());
            spec.network = NetworkMode::Joined(format!("/proc/{pid}/ns/net").into());
        }
        let plugin_cache = self.plugin_cache_dir();
        let mut on_netns = |pid: i32| match &holder {
            Some(h) => crate::network::connect(h, pid, plugin_cache.clone(), &endpoints),
            None => Ok(()),
        };
        c.status = RUNNING.into();
        c.started = Some(now_unix());
        c.exit_code = None;
        c.finished = None;
        self.state.write(|tx| state::update_container(tx, c))?;
        // Health starts over with every start, "starting" before the first probe.
        let health = config.healthcheck.as_ref().map(|_| {
            serde_json::to_string(&crate::monitor::health::Health::default())
                .expect("health serialises")
        });
        let state = &mut self.state;
        let outcome = crate::runtime::run_observed(&spec, &self.idmap, &mut on_netns, &mut |pid| {
            c.pid = Some(pid);
            c.pid_start = crate::runtime::proc::process_start_time(pid);
            let attrs = std::collections::BTreeMap::from([
                ("name".to_string(), c.name.clone()),
                ("image".to_string(), c.image_name.clone()),
            ]);
            let recorded = state.write(|tx| {
                state::update_container(tx, c)?;
                if health.is_some() {
                    state::set_health(tx, &c.id, health.as_deref())?;
                }
                state::add_event(tx, "container", "start", &c.id, &attrs)
            });
            if let Err(e) = recorded {
                tracing::error!(%e, "cannot record the container's pid");
            }
            network_lock.take();
            started(c);
        });
        drop(_ports);
        let _ = std::fs::remove_file(&ports_file);
        c.pid = None;
        c.pid_start = None;
        c.status = EXITED.into();
        c.finished = Some(now_unix());
        c.exit_code = Some(match &outcome {
            Ok(code) => *code,
            Err(e) => e.exit_code(),
        });
        c.error = outcome.as_ref().err().map(|e| e.to_string());
        self.state.write(|tx| state::update_container(tx, c))?;
        if outcome.is_ok() {
            let code = c.exit_code.unwrap_or(0).to_string();
            self.container_event(c, "die", &[("exitCode", code)]);
        }
        Ok(outcome)
    }

    pub(super) fn runtime_spec(
        &self,
        c: &ContainerRecord,
        config: &ContainerConfig,
    ) -> Result<ContainerSpec> {
        let dir = self.paths.container_dir(&c.id);
        let rootfs_path = dir.join("rootfs.json");
        let rootfs_json = std::fs::read(&rootfs_path).map_err(|source| EngineError::Io {
            path: rootfs_path.clone(),
            source,
        })?;
        let rootfs = serde_json::from_slice(&rootfs_json).map_err(|source| {
            EngineError::State(crate::state::StateError::Corrupt {
                what: "rootfs",
                id: c.id.clone(),
                source,
            })
        })?;
        let mount_point = self.paths.container_run_dir(&c.id).join("merged");
        std::fs::create_dir_all(&mount_point).map_err(|source| EngineError::Io {
            path: mount_point.clone(),
            source,
        })?;
        let userdata = dir.join("userdata");
        let etc_files = ["hosts", "hostname", "resolv.conf"]
            .iter()
            .map(|f| (format!("/etc/{f}"), userdata.join(f)))
            .collect();
        Ok(ContainerSpec {
            id: c.id.clone(),
            rootfs,
            mount_point,
            readonly_rootfs: config.read_only,
            args: config.args(),
            env: config.env.clone(),
            cwd: config.working_dir.clone(),
            user: Some(config.user.clone()).filter(|u| !u.is_empty()),
            hostname: config.hostname.clone(),
            network: if config.network == "host" {
                NetworkMode::Host
            } else {
                NetworkMode::None
            },
            userns: None,
            etc_files,
            tty: config.tty,
            stdin: config.interactive,
            init: config.init,
            tty_size: self.tty_size,
            tty_size_file: config.tty.then(|| self.attach_path(&c.id, "size")),
        })
    }

    pub fn remove_container(&mut self, key: &str, opts: RemoveOptions) -> Result<String> {
        let c = self.find_container(key)?;
        let _span = tracing::info_span!("rm", container = %&c.id[..12]).entered();
        // A held lock is the truth about a live container, whatever the status says.
        if c.status == RUNNING || c.status == super::RESTARTING || self.watched(&c.id) {
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
        self.container_event(&c, "destroy", &[]);
        Ok(c.id)
    }

    /// Removes a container nobody runs (or that the caller itself watched): its files,
    /// then its record.
    pub(super) fn remove_stopped(&mut self, id: &str) -> Result<()> {
        self.remove_container_files(id)?;
        let networks = self.state.container_allocations(id)?;
        self.state.write(|tx| state::remove_container(tx, id))?;
        for (network, _) in networks {
            self.refresh_dns(&network);
        }
        Ok(())
    }

    pub fn list_containers(&mut self, all: bool) -> Result<Vec<ContainerSummary>> {
        let mut out = Vec::new();
        for c in self.state.containers()? {
            let c = self.repair(c)?;
            if !all && c.status != RUNNING && c.status != super::RESTARTING {
                continue;
            }
            let config = self.container_config(&c)?;
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
