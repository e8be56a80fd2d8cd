//! The health prober: `burrow __health ID`, spawned by the monitor while the container
//! runs. Each probe is `burrow exec` of the healthcheck command, killed at the timeout;
//! results go to the state store as State.Health.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use super::container::RUNNING;
use super::{Engine, Result};
use crate::monitor::health::{Health, MAX_OUTPUT, Probe};
use crate::state;

const POLL: Duration = Duration::from_millis(50);

impl Engine {
    /// Probes the container until it stops (or its pid 1 changes). Returns when done.
    pub fn health_loop(&mut self, id: &str) -> Result<()> {
        let c = self.find_container(id)?;
        let config = self.container_config(&c)?;
        let Some(check) = config.healthcheck else {
            return Ok(());
        };
        let _span = tracing::info_span!("health", container = %&c.id[..12]).entered();
        let pid = c.pid;
        let began = Instant::now();
        let mut health = Health::default();
        self.write_health(&c.id, &health)?;
        loop {
            // Sleep one interval, watching for the container to go away.
            let until = Instant::now() + Duration::from_millis(check.interval_ms);
            while Instant::now() < until {
                std::thread::sleep(POLL);
                if !self.still_running(&c.id, pid)? {
                    return Ok(());
                }
            }
            let probe = self.probe(&c.id, &check.command, check.timeout_ms)?;
            // A probe that failed because the container is being stopped says nothing
            // about its health.
            if !self.still_running(&c.id, pid)? {
                return Ok(());
            }
            let in_start_period = began.elapsed() < Duration::from_millis(check.start_period_ms);
            if let Some(status) = health.record(probe, check.retries, in_start_period) {
                tracing::info!(status = %status, "health_status");
                self.container_event(&c, &format!("health_status: {status}"), &[]);
            }
            self.write_health(&c.id, &health)?;
        }
    }

    fn still_running(&self, id: &str, pid: Option<i32>) -> Result<bool> {
        Ok(self
            .state
            .find_containers(id)?
            .pop()
            .is_some_and(|c| c.status == RUNNING && c.pid == pid && !c.stop_requested))
    }

    fn write_health(&mut self, id: &str, health: &Health) -> Result<()> {
        let json = serde_json::to_string(health).expect("health serialises");
        self.state
            .write(|tx| state::set_health(tx, id, Some(&json)))?;
        Ok(())
    }

    /// One probe: `burrow exec ID CMD…` with its output in a file, killed at the timeout.
    fn probe(&self, id: &str, command: &[String], timeout_ms: u64) -> Result<Probe> {
        let start = SystemTime::now();
        let out_path = self.paths.container_run_dir(id).join("health-output");
        let io = |source| super::EngineError::Io {
            path: out_path.clone(),
            source,
        };
        let out = std::fs::File::create(&out_path).map_err(io)?;
        let mut child = self
            .self_command()
            .arg("exec")
            .arg(id)
            .args(command)
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(io)?)
            .stderr(out)
            .spawn()
            .map_err(io)?;
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
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
