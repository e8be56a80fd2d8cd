//! A container's logs from the engine's side: opening the relay's pipeline through its
//! driver, reading logs back for `burrow logs`, counting lines a driver could not take.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Containers, RUNNING};
use crate::engine::logconfig::{self, LogRefusal, Split, TagFields};
use crate::engine::spec::ContainerConfig;
use crate::engine::{EngineError, Result};
use crate::monitor::logpipe::LogPipe;
use crate::plugin::{
    Container, Entry, HostInfo, Kv, LogContext, LogDriver, PluginError, ReadOpts, Reader, Source,
};
use crate::state::ContainerRecord;

/// What `burrow logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    pub tail: Option<u32>,
    pub follow: bool,
}

/// One entry as `logs` prints it.
pub struct LogLine {
    pub time_ns: u64,
    pub stderr: bool,
    /// With its newline unless it is a chunk of a longer line.
    pub bytes: Vec<u8>,
    pub attrs: Vec<(String, String)>,
}

impl Containers<'_> {
    pub(super) fn log_dir(&self, id: &str) -> PathBuf {
        self.paths.container_dir(id).join("logs")
    }

    fn cache_dir(&self, id: &str) -> PathBuf {
        self.paths.container_dir(id).join("logs-cache")
    }

    /// Where json-file keeps the log, for `inspect`'s LogPath.
    pub(super) fn log_path(&self, id: &str, config: &ContainerConfig) -> Option<PathBuf> {
        (config.log.driver == logconfig::DEFAULT_DRIVER)
            .then(|| self.log_dir(id).join(format!("{id}-json.log")))
    }

    /// What the driver is told about the container.
    fn log_context(
        &self,
        c: &ContainerRecord,
        config: &ContainerConfig,
        opts: Vec<(String, String)>,
        dir: PathBuf,
    ) -> Result<LogContext> {
        let command = config.args().join(" ");
        let fields = TagFields {
            id: &c.id,
            name: &c.name,
            image_id: &c.image_id,
            image_name: &c.image_name,
            command: &command,
            hostname: &config.hostname,
        };
        let tag = opts
            .iter()
            .find(|(k, _)| k == "tag")
            .map(|(_, t)| logconfig::render_tag(t, &fields))
            .transpose()?;
        let mut attrs = logconfig::attributes(&opts, &config.labels, &config.env)?;
        if let Some(t) = &tag {
            attrs.push(("tag".into(), t.clone()));
            attrs.sort();
        }
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let created = c.created.max(0) as u64 * 1_000_000_000;
        Ok(LogContext {
            container: Container {
                id: c.id.clone(),
                name: c.name.clone(),
                image_id: c.image_id.clone(),
                image_name: c.image_name.clone(),
                command,
                hostname: config.hostname.clone(),
                created_ns: created,
                tag,
                attrs: attrs
                    .into_iter()
                    .map(|(key, value)| Kv { key, value })
                    .collect(),
                host: HostInfo {
                    hostname,
                    pid: std::process::id(),
                    utc_offset_secs: crate::runtime::utc_offset_secs(),
                },
            },
            opts,
            log_dir: Some(dir),
        })
    }

    /// The relay's pipeline for container `c`: the driver's logger (refusing to start the
    /// container when it cannot open, as Docker does) and the local cache.
    pub(super) fn open_log_pipe(
        &self,
        c: &ContainerRecord,
        config: &ContainerConfig,
    ) -> Result<LogPipe> {
        let Split {
            mode,
            cache,
            driver_opts,
        } = config.log.split()?;
        let driver = self.plugins.log_driver(&config.log.driver)?;
        let dir = self.log_dir(&c.id);
        create_dir(&dir)?;
        let ctx = self.log_context(c, config, driver_opts, dir)?;
        let logger = driver.open_logger(ctx).map_err(|e| -> EngineError {
            match e {
                PluginError::Unavailable { msg, .. } | PluginError::Config(msg) => {
                    LogRefusal::Driver {
                        driver: config.log.driver.clone(),
                        message: msg,
                    }
                    .into()
                }
                e => e.into(),
            }
        })?;
        let cache = match self.cache_context(c, config, &driver, cache)? {
            Some(ctx) => {
                create_dir(ctx.log_dir.as_deref().expect("the cache has a directory"))?;
                let json = self.plugins.host()?.log_driver(logconfig::DEFAULT_DRIVER)?;
                Some(json.open_logger(ctx)?)
            }
            None => None,
        };
        Ok(LogPipe::start(logger, cache, mode))
    }

    /// The local cache's context (a json-file logger in `logs-cache/`), when the driver
    /// cannot read back and the cache is on (dual logging).
    fn cache_context(
        &self,
        c: &ContainerRecord,
        config: &ContainerConfig,
        driver: &LogDriver,
        cache: Option<logconfig::Cache>,
    ) -> Result<Option<LogContext>> {
        match cache {
            Some(cache) if !driver.can_read() && config.log.driver != "none" => Ok(Some(
                self.log_context(c, config, cache_opts(&cache), self.cache_dir(&c.id))?,
            )),
            _ => Ok(None),
        }
    }

    /// A reader over what the container logged: the driver's own, or the local cache.
    fn log_reader(&self, c: &ContainerRecord, ro: ReadOpts) -> Result<Reader> {
        let config = self.records.config(c)?;
        let split = config.log.split()?;
        let driver = self.plugins.log_driver(&config.log.driver)?;
        if driver.can_read() {
            let ctx = self.log_context(c, &config, split.driver_opts, self.log_dir(&c.id))?;
            return Ok(driver.open_reader(ctx, ro)?);
        }
        match self.cache_context(c, &config, &driver, split.cache)? {
            Some(ctx) => {
                let json = self.plugins.host()?.log_driver(logconfig::DEFAULT_DRIVER)?;
                Ok(json.open_reader(ctx, ro)?)
            }
            None => Err(LogRefusal::CannotRead.into()),
        }
    }

    /// `logs`: hands every entry to `out`, following new ones while the container runs.
    pub fn logs(
        &self,
        key: &str,
        opts: &LogsOptions,
        out: &mut dyn FnMut(LogLine) -> std::io::Result<()>,
    ) -> Result<()> {
        let c = self.records.find(key)?;
        let _span = tracing::info_span!("logs", container = %&c.id[..12]).entered();
        let ro = ReadOpts {
            since_ns: opts.since_ns,
            until_ns: opts.until_ns,
            tail: opts.tail,
        };
        let mut reader = self.log_reader(&c, ro)?;
        let io = |source| EngineError::Io {
            what: "pass on the logs in",
            path: self.log_dir(&c.id),
            source,
        };
        // Docker follows only while the container runs, and never past --until.
        let follow = opts.follow && opts.until_ns.is_none();
        let mut idle = Duration::from_millis(10);
        loop {
            let batch = reader.next(1000)?;
            if batch.is_empty() {
                let running = self
                    .state
                    .find_containers(&c.id)?
                    .pop()
                    .is_some_and(|c| c.status == RUNNING);
                if !follow || !running {
                    // One last look: the relay writes the final lines as the container ends.
                    let rest = if follow { reader.next(1000)? } else { vec![] };
                    if rest.is_empty() {
                        return Ok(());
                    }
                    for e in rest {
                        out(log_line(e)).map_err(io)?;
                    }
                    continue;
                }
                std::thread::sleep(idle);
                idle = (idle * 2).min(Duration::from_millis(200));
                continue;
            }
            idle = Duration::from_millis(10);
            for e in batch {
                out(log_line(e)).map_err(io)?;
            }
        }
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| EngineError::Io {
        what: "create",
        path: dir.to_path_buf(),
        source,
    })
}

fn cache_opts(cache: &logconfig::Cache) -> Vec<(String, String)> {
    vec![
        ("max-size".into(), cache.max_size.clone()),
        ("max-file".into(), cache.max_file.clone()),
        ("compress".into(), cache.compress.to_string()),
    ]
}

fn log_line(e: Entry) -> LogLine {
    let mut bytes = e.line;
    if e.partial.as_ref().is_none_or(|p| p.last) {
        bytes.push(b'\n');
    }
    LogLine {
        time_ns: e.time_ns,
        stderr: e.source == Source::Stderr,
        bytes,
        attrs: e.attrs.into_iter().map(|kv| (kv.key, kv.value)).collect(),
    }
}

impl Containers<'_> {
    /// Adds `dropped` to the container's count of lost log lines (shown by `inspect`) and
    /// records a `log_dropped` event.
    pub(super) fn record_log_drops(
        &self,
        c: &ContainerRecord,
        config: &ContainerConfig,
        stats: &crate::monitor::logpipe::Stats,
    ) {
        let dropped = stats.dropped;
        if dropped == 0 {
            return;
        }
        let path = self.log_drops_path(&c.id);
        let total = self.log_drops(&c.id) + dropped;
        if let Err(e) = crate::engine::lock::write_atomic(&path, total.to_string().as_bytes()) {
            tracing::warn!(%e, "cannot record dropped log lines");
        }
        tracing::warn!(dropped, total, "log lines dropped");
        let mut attrs = vec![
            ("dropped", dropped.to_string()),
            ("driver", config.log.driver.clone()),
        ];
        if let Some(why) = &stats.why {
            attrs.push(("error", why.clone()));
        }
        self.records.event(c, "log_dropped", &attrs);
    }

    fn log_drops_path(&self, id: &str) -> PathBuf {
        self.paths.container_dir(id).join("log-dropped")
    }

    /// Log lines the container's drivers could not take, over all its runs.
    pub(super) fn log_drops(&self, id: &str) -> u64 {
        std::fs::read_to_string(self.log_drops_path(id))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}
