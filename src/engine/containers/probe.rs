//! The health prober's side of the engine: `burrow __health ID` probes through `exec` and
//! records State.Health (the loop itself is `crate::monitor::prober`).

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use super::{Containers, RUNNING};
use crate::engine::{EngineError, Result};
use crate::monitor::health::{Health, MAX_OUTPUT, Probe};
use crate::monitor::prober::{self, Probed};
use crate::state;

impl Containers<'_> {
    /// Probes the container until it stops (or its pid 1 changes). Returns when done.
    pub fn probe_health(&self, id: &str) -> Result<()> {
        let c = self.records.find(id)?;
        let config = self.records.config(&c)?;
        let Some(check) = config.healthcheck else {
            return Ok(());
        };
        let _span = tracing::info_span!("health", container = %&c.id[..12]).entered();
        let pid = c.pid;
        prober::watch(
            &mut Target {
                containers: self,
                c,
                pid,
            },
            &check,
        )
    }
}

/// The container the prober watches, as it was when the prober started.
struct Target<'c, 'e> {
    containers: &'c Containers<'e>,
    c: state::ContainerRecord,
    pid: Option<i32>,
}

impl Probed for Target<'_, '_> {
    type Error = EngineError;

    fn running(&mut self) -> Result<bool> {
        Ok(self
            .containers
            .records
            .current(&self.c.id)?
            .is_some_and(|c| c.status == RUNNING && c.pid == self.pid && !c.stop_requested))
    }

    fn record(&mut self, health: &Health, changed: Option<&str>) -> Result<()> {
        if let Some(status) = changed {
            self.containers
                .records
                .event(&self.c, &format!("health_status: {status}"), &[]);
        }
        let json = serde_json::to_string(health).expect("health serialises");
        self.containers
            .state
            .write(|tx| state::set_health(tx, &self.c.id, Some(&json)))?;
        Ok(())
    }

    /// One probe: `burrow exec ID CMD…` with its output in a file, killed at the timeout.
    fn probe(&mut self, command: &[String], timeout: Duration) -> Result<Probe> {
        let id = &self.c.id;
        let timeout_ms = timeout.as_millis();
        let start = SystemTime::now();
        let out_path = self
            .containers
            .paths
            .container_run_dir(id)
            .join("health-output");
        let io = |source| EngineError::Io {
            what: "run the healthcheck, its output in",
            path: out_path.clone(),
            source,
        };
        let out = std::fs::File::create(&out_path).map_err(io)?;
        let mut child = self
            .containers
            .self_command()
            .arg("exec")
            .arg(id)
            .args(command)
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(io)?)
            .stderr(out)
            .spawn()
            .map_err(io)?;
        let deadline = Instant::now() + timeout;
        let (exit_code, timed_out) = loop {
            if let Some(status) = child.try_wait().map_err(io)? {
                break (status.code().unwrap_or(-1), false);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break (-1, true);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut output = std::fs::read(&out_path).unwrap_or_default();
        output.truncate(MAX_OUTPUT);
        let mut output = String::from_utf8_lossy(&output).into_owned();
        if timed_out {
            output = format!("Health check exceeded timeout ({}ms)", timeout_ms);
        }
        let stamp = |t: SystemTime| humantime::format_rfc3339_nanos(t).to_string();
        Ok(Probe {
            start: stamp(start),
            end: stamp(SystemTime::now()),
            exit_code,
            output,
        })
    }
}
