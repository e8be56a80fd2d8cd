//! Calls into a log driver: one store per logger or reader, a deadline per call, and a
//! fresh instance after a trap or a timeout.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceAny;
use wasmtime::{Store, Trap};

use super::bindings::burrow::plugin::types;
use super::bindings::{self, LogDriverPre};
use super::policy::Policy;
use super::state::{HostState, arm, new_store};
use super::wasm_engine::Shared;
use super::{Entry, Kv, LogContext, LogDriver, PluginError, PluginInfo, ReadOpts};

const SHORT: Duration = Duration::from_secs(1);
const OPEN: Duration = Duration::from_secs(10);
const WRITE: Duration = Duration::from_secs(5);

/// `describe()` and `can-read()`, once at load, with nothing granted.
pub(crate) fn describe(
    shared: &Arc<Shared>,
    pre: &LogDriverPre<HostState>,
    label: &str,
) -> Result<(PluginInfo, bool), PluginError> {
    let mut store = new_store(shared, label, Policy::none(), None)?;
    arm(&mut store, OPEN);
    let b = pre
        .instantiate(&mut store)
        .map_err(|e| call_error(label, "instantiate", OPEN, e))?;
    arm(&mut store, SHORT);
    let info = b
        .burrow_plugin_logging()
        .call_describe(&mut store)
        .map_err(|e| call_error(label, "describe", SHORT, e))?;
    arm(&mut store, SHORT);
    let can_read = b
        .burrow_plugin_logging()
        .call_can_read(&mut store)
        .map_err(|e| call_error(label, "can-read", SHORT, e))?;
    Ok((info, can_read))
}

pub(crate) fn validate(driver: &LogDriver, opts: &[(String, String)]) -> Result<(), PluginError> {
    let name = driver.name();
    let mut store = new_store(&driver.inner.shared, name, Policy::none(), None)?;
    arm(&mut store, OPEN);
    let b = driver
        .inner
        .pre
        .instantiate(&mut store)
        .map_err(|e| call_error(name, "instantiate", OPEN, e))?;
    arm(&mut store, SHORT);
    b.burrow_plugin_logging()
        .call_validate(&mut store, &kvs(opts))
        .map_err(|e| call_error(name, "validate", SHORT, e))?
        .map_err(|e| guest_error(name, "validate", e))
}

fn kvs(opts: &[(String, String)]) -> Vec<Kv> {
    opts.iter()
        .map(|(key, value)| Kv {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// A trap or a timeout: the instance is unusable afterwards.
pub(super) fn call_error(
    plugin: &str,
    call: &'static str,
    limit: Duration,
    err: wasmtime::Error,
) -> PluginError {
    if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        PluginError::Timeout {
            plugin: plugin.into(),
            call,
            secs: limit.as_secs(),
        }
    } else {
        PluginError::Trap {
            plugin: plugin.into(),
            call,
            source: err,
        }
    }
}

/// An error the plugin returned: the instance stays usable.
pub(super) fn guest_error(plugin: &str, call: &'static str, err: types::Error) -> PluginError {
    let plugin = plugin.to_string();
    match err {
        types::Error::InvalidConfig(m) => PluginError::Config(m),
        types::Error::Unsupported(msg) => PluginError::Unsupported { plugin, msg },
        types::Error::Unavailable(msg) => PluginError::Unavailable { plugin, msg },
        types::Error::Denied(msg) => PluginError::Denied { plugin, msg },
        types::Error::Internal(msg) => PluginError::Internal { plugin, call, msg },
    }
}

/// One instance and the logger or reader resource it opened.
struct Live {
    store: Store<HostState>,
    bindings: bindings::LogDriver,
    handle: ResourceAny,
}

impl Live {
    fn start(
        driver: &LogDriver,
        ctx: &LogContext,
        ro: Option<ReadOpts>,
    ) -> Result<Live, PluginError> {
        let name = driver.name();
        let policy = driver.policy(ctx, ro.is_some());
        let mut store = new_store(&driver.inner.shared, name, policy, ctx.log_dir.as_deref())?;
        arm(&mut store, OPEN);
        let bindings = driver
            .inner
            .pre
            .instantiate(&mut store)
            .map_err(|e| call_error(name, "instantiate", OPEN, e))?;
        arm(&mut store, OPEN);
        let guest = bindings.burrow_plugin_logging();
        let opts = kvs(&ctx.opts);
        let opened = match ro {
            None => guest.logger().call_open(&mut store, &ctx.container, &opts),
            Some(ro) => guest
                .reader()
                .call_open(&mut store, &ctx.container, &opts, ro),
        };
        let call = if ro.is_some() {
            "reader.open"
        } else {
            "logger.open"
        };
        let handle = opened
            .map_err(|e| call_error(name, call, OPEN, e))?
            .map_err(|e| guest_error(name, call, e))?;
        Ok(Live {
            store,
            bindings,
            handle,
        })
    }

    /// Runs the resource's destructor (closes the plugin's files and connections).
    fn close(mut self) {
        arm(&mut self.store, SHORT);
        if let Err(err) = self.handle.resource_drop(&mut self.store) {
            tracing::debug!(plugin = &*self.store.data().plugin, %err, "log driver failed to close");
        }
    }
}

/// Runs `f` on the live instance (starting one if needed); a trap or a timeout drops the
/// instance, so that the next call starts afresh.
fn call<R>(
    driver: &LogDriver,
    slot: &mut Option<Live>,
    start: impl FnOnce() -> Result<Live, PluginError>,
    name: &'static str,
    limit: Duration,
    f: impl FnOnce(&mut Live) -> wasmtime::Result<Result<R, types::Error>>,
) -> Result<R, PluginError> {
    let live = match slot {
        Some(live) => live,
        None => slot.insert(start()?),
    };
    arm(&mut live.store, limit);
    match f(live) {
        Ok(r) => r.map_err(|e| guest_error(driver.name(), name, e)),
        Err(err) => {
            *slot = None;
            let err = call_error(driver.name(), name, limit, err);
            tracing::warn!(plugin = driver.name(), call = name, %err, "log driver instance discarded");
            Err(err)
        }
    }
}

/// Writes a container's output through a log driver.
pub struct Logger {
    driver: LogDriver,
    ctx: LogContext,
    live: Option<Live>,
}

impl Logger {
    pub(crate) fn open(driver: LogDriver, ctx: LogContext) -> Result<Logger, PluginError> {
        let live = Live::start(&driver, &ctx, None)?;
        Ok(Logger {
            driver,
            ctx,
            live: Some(live),
        })
    }

    /// Delivers a batch. After a trap the batch is sent once more on a fresh instance; after
    /// a timeout it is not (it would stall the container's output twice as long).
    pub fn write(&mut self, batch: &[Entry]) -> Result<(), PluginError> {
        match self.write_once(batch) {
            Err(PluginError::Trap { .. }) => self.write_once(batch),
            other => other,
        }
    }

    fn write_once(&mut self, batch: &[Entry]) -> Result<(), PluginError> {
        let (driver, ctx) = (&self.driver, &self.ctx);
        call(
            driver,
            &mut self.live,
            || Live::start(driver, ctx, None),
            "logger.write",
            WRITE,
            |l| {
                l.bindings.burrow_plugin_logging().logger().call_write(
                    &mut l.store,
                    l.handle,
                    batch,
                )
            },
        )
    }

    pub fn flush(&mut self) -> Result<(), PluginError> {
        let (driver, ctx) = (&self.driver, &self.ctx);
        call(
            driver,
            &mut self.live,
            || Live::start(driver, ctx, None),
            "logger.flush",
            WRITE,
            |l| {
                l.bindings
                    .burrow_plugin_logging()
                    .logger()
                    .call_flush(&mut l.store, l.handle)
            },
        )
    }

    #[cfg(test)]
    /// True while an instance is live (false after a trap, until the next call).
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            live.close();
        }
    }
}

/// Reads back what a log driver stored (`burrow logs`).
pub struct Reader {
    driver: LogDriver,
    ctx: LogContext,
    ro: ReadOpts,
    live: Option<Live>,
    /// Time of the last entry returned and how many had that time: a fresh instance starts
    /// from there, so a trap neither repeats nor loses entries.
    last: Option<(u64, usize)>,
}

impl Reader {
    pub(crate) fn open(
        driver: LogDriver,
        ctx: LogContext,
        ro: ReadOpts,
    ) -> Result<Reader, PluginError> {
        let live = Live::start(&driver, &ctx, Some(ro))?;
        Ok(Reader {
            driver,
            ctx,
            ro,
            live: Some(live),
            last: None,
        })
    }

    /// Up to `max` entries; empty when caught up.
    pub fn next(&mut self, max: u32) -> Result<Vec<Entry>, PluginError> {
        let resumed = self.live.is_none();
        let ro = match self.last {
            Some((time, _)) if resumed => ReadOpts {
                since_ns: Some(time),
                tail: None,
                ..self.ro
            },
            _ => self.ro,
        };
        let (driver, ctx) = (&self.driver, &self.ctx);
        let mut entries = call(
            driver,
            &mut self.live,
            || Live::start(driver, ctx, Some(ro)),
            "reader.next",
            WRITE,
            |l| {
                l.bindings
                    .burrow_plugin_logging()
                    .reader()
                    .call_next(&mut l.store, l.handle, max)
            },
        )?;
        if let (true, Some((time, seen))) = (resumed, self.last) {
            let mut skip = seen;
            entries.retain(|e| {
                let dup = e.time_ns < time || (e.time_ns == time && skip > 0);
                if e.time_ns == time && skip > 0 {
                    skip -= 1;
                }
                !dup
            });
        }
        for e in &entries {
            self.last = match self.last {
                Some((t, n)) if t == e.time_ns => Some((t, n + 1)),
                _ => Some((e.time_ns, 1)),
            };
        }
        Ok(entries)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            live.close();
        }
    }
}
