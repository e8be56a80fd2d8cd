//! The process's wasmtime engine, its linker and the epoch ticker.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Config, Engine, OptLevel};

use super::bindings::LogDriverPre;
use super::state::HostState;
use super::{PluginError, bindings, cache};

/// One epoch tick; deadlines are counted in ticks.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Linear memory an instance may grow to; growing past it traps.
pub(crate) const MEMORY_CAP: usize = 32 << 20;

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    linker: Linker<HostState>,
    pub(crate) cache: cache::CompileCache,
    pub(crate) compiles: AtomicU64,
    ticker: OnceLock<()>,
}

impl Shared {
    pub(crate) fn new(cache_dir: PathBuf) -> Result<Self, PluginError> {
        let mut cfg = Config::new();
        cfg.epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            // No WASIp3: synchronous calls are ~3x cheaper without the concurrency machinery.
            .concurrency_support(false);
        let engine = Engine::new(&cfg).map_err(PluginError::Engine)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(PluginError::Engine)?;
        bindings::LogDriver::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(PluginError::Engine)?;
        let cache = cache::CompileCache::open(cache_dir, &engine)?;
        Ok(Shared {
            engine,
            linker,
            cache,
            compiles: AtomicU64::new(0),
            ticker: OnceLock::new(),
        })
    }

    /// The compiled component for `wasm`, from the cache when it holds it.
    pub(crate) fn component(&self, label: &str, wasm: &[u8]) -> Result<Component, PluginError> {
        self.cache.load(&self.engine, label, wasm, &self.compiles)
    }

    /// Links `component` against the host's imports (WASI and both worlds' imports).
    pub(crate) fn instantiate_pre(
        &self,
        component: &Component,
        label: &str,
    ) -> Result<InstancePre<HostState>, PluginError> {
        self.linker
            .instantiate_pre(component)
            .map_err(|source| PluginError::Link {
                plugin: label.into(),
                source,
            })
    }

    pub(crate) fn instance_pre(
        &self,
        component: &Component,
        label: &str,
    ) -> Result<LogDriverPre<HostState>, PluginError> {
        let pre = self.instantiate_pre(component, label)?;
        LogDriverPre::new(pre).map_err(|source| PluginError::Link {
            plugin: label.into(),
            source,
        })
    }

    /// Starts the thread that advances the epoch, once, when the first plugin is loaded (a
    /// process that loads none keeps no thread: the monitor forks before threads).
    pub(crate) fn start_ticker(&self) {
        self.ticker.get_or_init(|| {
            let engine = self.engine.weak();
            let spawned = std::thread::Builder::new()
                .name("burrow-wasm-epoch".into())
                .spawn(move || {
                    crate::runtime::proc::block_all_signals();
                    while let Some(engine) = engine.upgrade() {
                        engine.increment_epoch();
                        drop(engine);
                        std::thread::sleep(TICK);
                    }
                });
            if let Err(err) = spawned {
                // Without the ticker deadlines never fire; calls still run, unbounded.
                tracing::error!(%err, "cannot start the plugin deadline thread");
            }
        });
    }
}

/// Ticks for a deadline of `d`.
pub(crate) fn ticks(d: Duration) -> u64 {
    (d.as_millis() / TICK.as_millis()).max(1) as u64
}
