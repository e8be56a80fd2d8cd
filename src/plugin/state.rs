//! The data of one instance's store: its WASI context (empty but for what was granted), its
//! resources, limits and policy; and the `diag` import.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::bindings::burrow::plugin::{diag, log_types, types};
use super::policy::Policy;
use super::wasm_engine::{MEMORY_CAP, Shared, ticks};
use super::{PluginError, http};

pub(crate) struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    limits: StoreLimits,
    pub(crate) policy: Arc<Policy>,
    pub(crate) plugin: Arc<str>,
    /// When the current call's deadline passes: host imports clamp their own timeouts to it.
    pub(crate) deadline: Instant,
    pub(crate) conns: usize,
    pub(crate) http_agent: Option<http::Agent>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// Time left before the current call's deadline, at most `wanted` (0 = "no limit").
    pub(crate) fn clamp(&self, wanted_ms: u32) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match wanted_ms {
            0 => left,
            ms => left.min(Duration::from_millis(ms.into())),
        }
        .max(Duration::from_millis(1))
    }
}

/// A store for one instance. No environment, arguments, stdio or sockets: guest stdout and
/// stderr are discarded (plugins report through `diag`). Only a granted log directory is
/// preopened, as `/logs`.
pub(crate) fn new_store(
    shared: &Shared,
    plugin: &str,
    policy: Policy,
    log_dir: Option<&Path>,
) -> Result<Store<HostState>, PluginError> {
    let mut wasi = WasiCtx::builder();
    wasi.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if let (true, Some(dir)) = (policy.log_dir, log_dir) {
        let perms = if policy.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        wasi.preopened_dir(dir, "/logs", perms)
            .map_err(|e| PluginError::Io {
                plugin: plugin.into(),
                path: dir.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
    }
    let state = HostState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new()
            .memory_size(MEMORY_CAP)
            .trap_on_grow_failure(true)
            .build(),
        policy: Arc::new(policy),
        plugin: plugin.into(),
        deadline: Instant::now(),
        conns: 0,
        http_agent: None,
    };
    let mut store = Store::new(&shared.engine, state);
    store.limiter(|s| &mut s.limits);
    Ok(store)
}

/// A store's data without a store, for testing imports directly.
#[cfg(test)]
pub(crate) fn test_state(policy: Policy) -> HostState {
    HostState {
        wasi: WasiCtx::builder().build(),
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new().build(),
        policy: Arc::new(policy),
        plugin: "test".into(),
        deadline: Instant::now() + Duration::from_secs(5),
        conns: 0,
        http_agent: None,
    }
}

/// Arms the deadline of the next call into the guest.
pub(crate) fn arm(store: &mut Store<HostState>, limit: Duration) {
    store.data_mut().deadline = Instant::now() + limit;
    store.set_epoch_deadline(ticks(limit));
}

impl diag::Host for HostState {
    fn log(&mut self, level: diag::Level, msg: String) {
        let plugin = &*self.plugin;
        // The guest picks the message: cap what it can put in our logs.
        let msg = msg
            .get(..msg.floor_char_boundary_compat(4096))
            .unwrap_or("");
        match level {
            diag::Level::Debug => tracing::debug!(plugin, "{msg}"),
            diag::Level::Info => tracing::info!(plugin, "{msg}"),
            diag::Level::Warn => tracing::warn!(plugin, "{msg}"),
            diag::Level::Error => tracing::error!(plugin, "{msg}"),
        }
    }
}

impl types::Host for HostState {}
impl log_types::Host for HostState {}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for String {
    fn floor_char_boundary_compat(&self, i: usize) -> usize {
        let mut i = i.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
