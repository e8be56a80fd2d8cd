//! The health prober: `burrow __health ID`, spawned beside the monitor while the container
//! runs. It sleeps one interval, probes, and records the status Docker's rules give
//! ([`super::health`]); it stops once the container stops or its pid 1 changes. Probing
//! (an `exec` of the check) and recording are the engine's, reached through [`Probed`].

use std::time::{Duration, Instant};

use super::health::{Health, Healthcheck, Probe};

/// How often the prober looks whether its container still runs while it sleeps.
const POLL: Duration = Duration::from_millis(50);

/// What the prober needs of the engine for the one container it probes.
pub trait Probed {
    type Error;
    /// Whether the container still runs as the process the prober was started for.
    fn running(&mut self) -> Result<bool, Self::Error>;
    /// Runs the check once, killed at `timeout`.
    fn probe(&mut self, command: &[String], timeout: Duration) -> Result<Probe, Self::Error>;
    /// Records the health; `changed` is the new status when it changed.
    fn record(&mut self, health: &Health, changed: Option<&str>) -> Result<(), Self::Error>;
}

/// Probes until the container stops.
pub fn watch<P: Probed>(p: &mut P, check: &Healthcheck) -> Result<(), P::Error> {
    let began = Instant::now();
    let mut health = Health::default();
    p.record(&health, None)?;
    loop {
        // Sleep one interval (in steps of POLL, so never less than one), watching for the
        // container to go away.
        let until = Instant::now() + Duration::from_millis(check.interval_ms);
        while Instant::now() < until {
            std::thread::sleep(POLL);
            if !p.running()? {
                return Ok(());
            }
        }
        let probe = p.probe(&check.command, Duration::from_millis(check.timeout_ms))?;
        // A probe that failed because the container is being stopped says nothing about
        // its health.
        if !p.running()? {
            return Ok(());
        }
        let in_start_period = began.elapsed() < Duration::from_millis(check.start_period_ms);
        let changed = health.record(probe, check.retries, in_start_period);
        if let Some(status) = &changed {
            tracing::info!(status = %status, "health_status");
        }
        p.record(&health, changed.as_deref())?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container that answers its probes with the given codes, then stops.
    struct Fake {
        codes: Vec<i32>,
        probes: usize,
        recorded: Vec<(String, Option<String>)>,
    }

    impl Probed for Fake {
        type Error = ();
        fn running(&mut self) -> Result<bool, ()> {
            Ok(self.probes < self.codes.len())
        }
        fn probe(&mut self, command: &[String], _: Duration) -> Result<Probe, ()> {
            assert_eq!(command, ["true"]);
            self.probes += 1;
            Ok(Probe {
                start: String::new(),
                end: String::new(),
                exit_code: self.codes[self.probes - 1],
                output: String::new(),
            })
        }
        fn record(&mut self, health: &Health, changed: Option<&str>) -> Result<(), ()> {
            self.recorded
                .push((health.status.clone(), changed.map(str::to_string)));
            Ok(())
        }
    }

    #[test]
    fn statuses_follow_the_probes_and_the_prober_ends_with_the_container() {
        let check = Healthcheck {
            command: vec!["true".into()],
            interval_ms: 0,
            timeout_ms: 1000,
            start_period_ms: 0,
            retries: 2,
        };
        // The last probe races the container's stop: it is not recorded.
        let mut f = Fake {
            codes: vec![0, 1, 1, 1],
            probes: 0,
            recorded: vec![],
        };
        watch(&mut f, &check).unwrap();
        let statuses: Vec<(&str, Option<&str>)> = f
            .recorded
            .iter()
            .map(|(s, c)| (s.as_str(), c.as_deref()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("starting", None),
                ("healthy", Some("healthy")),
                ("healthy", None),
                ("unhealthy", Some("unhealthy")),
            ]
        );
    }
}
