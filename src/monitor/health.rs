//! Healthchecks as Docker runs them: the probe, its timing, and the status it leads to.
//! Pure data; the engine runs the probes (`burrow __health ID`, spawned by the monitor).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Docker's defaults for a HEALTHCHECK without options.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 3;
/// Docker's floor for the durations (`MinimumDuration`): below it, a flag is refused and an
/// image's value (which Docker's builder never writes) counts as unset, so a hostile image
/// cannot ask for back-to-back probes.
pub const MIN_DURATION: Duration = Duration::from_millis(1);
/// Docker keeps the last five probe results.
const LOG_LEN: usize = 5;
/// ...and at most this much of each probe's output.
pub const MAX_OUTPUT: usize = 4096;

/// A container's healthcheck, resolved from the image's HEALTHCHECK and the flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// argv of the probe (`CMD-SHELL x` is already `/bin/sh -c x`).
    pub command: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub start_period_ms: u64,
    pub retries: u32,
}

/// Docker's image-config form: `Test` is `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`;
/// durations are nanoseconds, 0 meaning the default.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerHealthConfig {
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: u64,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub start_period: u64,
    #[serde(default)]
    pub retries: u32,
}

/// The `--health-*` flags.
#[derive(Debug, Default, Clone)]
pub struct HealthFlags {
    pub cmd: Option<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub retries: Option<u32>,
    pub disabled: bool,
}

/// A `--health-*` duration below Docker's minimum.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} in Healthcheck cannot be less than 1ms (--health-{flag}); 0 means the default")]
pub struct TooShort {
    pub what: &'static str,
    pub flag: &'static str,
}

/// Merges the image's HEALTHCHECK with the flags; None when there is none or it is off.
pub fn resolve(
    image: Option<&DockerHealthConfig>,
    flags: &HealthFlags,
) -> Result<Option<Healthcheck>, TooShort> {
    for (given, what, flag) in [
        (flags.interval, "Interval", "interval"),
        (flags.timeout, "Timeout", "timeout"),
        (flags.start_period, "StartPeriod", "start-period"),
    ] {
        if given.is_some_and(|d| !d.is_zero() && d < MIN_DURATION) {
            return Err(TooShort { what, flag });
        }
    }
    Ok(resolve_checked(image, flags))
}

fn resolve_checked(image: Option<&DockerHealthConfig>, flags: &HealthFlags) -> Option<Healthcheck> {
    if flags.disabled {
        return None;
    }
    let image_test = image.map(|i| i.test.as_slice()).unwrap_or_default();
    let command = match (&flags.cmd, image_test.split_first()) {
        (Some(cmd), _) => shell(cmd),
        (None, Some((kind, rest))) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
        (None, Some((kind, rest))) if kind == "CMD-SHELL" && !rest.is_empty() => {
            shell(&rest.join(" "))
        }
        _ => return None,
    };
    let nanos = |v: Option<u64>| v.map(Duration::from_nanos).filter(|d| *d >= MIN_DURATION);
    let pick = |flag: Option<Duration>, image: Option<u64>, default: Duration| {
        flag.filter(|d| !d.is_zero())
            .or(nanos(image))
            .unwrap_or(default)
            .as_millis() as u64
    };
    Some(Healthcheck {
        command,
        interval_ms: pick(flags.interval, image.map(|i| i.interval), DEFAULT_INTERVAL),
        timeout_ms: pick(flags.timeout, image.map(|i| i.timeout), DEFAULT_TIMEOUT),
        start_period_ms: pick(
            flags.start_period,
            image.map(|i| i.start_period),
            Duration::ZERO,
        ),
        retries: flags
            .retries
            .filter(|r| *r > 0)
            .or(image.map(|i| i.retries).filter(|r| *r > 0))
            .unwrap_or(DEFAULT_RETRIES),
    })
}

fn shell(cmd: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), cmd.into()]
}

/// One probe's result, as inspect shows it in State.Health.Log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// State.Health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            status: "starting".into(),
            failing_streak: 0,
            log: Vec::new(),
        }
    }
}

impl Health {
    /// Records a probe. `in_start_period` failures do not count, as in Docker. Returns the
    /// new status when it changed.
    pub fn record(&mut self, probe: Probe, retries: u32, in_start_period: bool) -> Option<String> {
        let before = self.status.clone();
        if probe.exit_code == 0 {
            self.failing_streak = 0;
            self.status = "healthy".into();
        } else if !in_start_period || self.status != "starting" {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(probe);
        if self.log.len() > LOG_LEN {
            self.log.remove(0);
        }
        (self.status != before).then(|| self.status.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(code: i32) -> Probe {
        Probe {
            start: "s".into(),
            end: "e".into(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn flags_override_the_image_and_none_disables() {
        let image = DockerHealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            timeout: 0,
            start_period: 0,
            retries: 0,
        };
        let h = resolve(Some(&image), &HealthFlags::default())
            .unwrap()
            .unwrap();
        assert_eq!(h.command, ["true"]);
        assert_eq!(h.interval_ms, 5000);
        assert_eq!(h.timeout_ms, 30_000);
        assert_eq!(h.retries, 3);
        let flags = HealthFlags {
            cmd: Some("test -e /ok".into()),
            interval: Some(Duration::from_millis(200)),
            retries: Some(2),
            ..Default::default()
        };
        let h = resolve(Some(&image), &flags).unwrap().unwrap();
        assert_eq!(h.command, ["/bin/sh", "-c", "test -e /ok"]);
        assert_eq!((h.interval_ms, h.retries), (200, 2));
        let shell_form = DockerHealthConfig {
            test: vec!["CMD-SHELL".into(), "exit 0".into()],
            ..Default::default()
        };
        assert_eq!(
            resolve(Some(&shell_form), &HealthFlags::default())
                .unwrap()
                .unwrap()
                .command,
            ["/bin/sh", "-c", "exit 0"]
        );
        let none = DockerHealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(resolve(Some(&none), &HealthFlags::default()), Ok(None));
        let off = HealthFlags {
            disabled: true,
            ..Default::default()
        };
        assert_eq!(resolve(Some(&image), &off), Ok(None));
        assert_eq!(resolve(None, &HealthFlags::default()), Ok(None));
    }

    #[test]
    fn durations_below_a_millisecond_are_refused_or_ignored() {
        // An image asking for a probe every nanosecond gets Docker's default interval.
        let hostile = DockerHealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 1,
            timeout: 999_999,
            start_period: 1,
            retries: 0,
        };
        let h = resolve(Some(&hostile), &HealthFlags::default())
            .unwrap()
            .unwrap();
        assert_eq!((h.interval_ms, h.timeout_ms), (30_000, 30_000));
        assert_eq!(h.start_period_ms, 0);
        let exactly = DockerHealthConfig {
            interval: 1_000_000,
            ..hostile.clone()
        };
        let h = resolve(Some(&exactly), &HealthFlags::default())
            .unwrap()
            .unwrap();
        assert_eq!(h.interval_ms, 1);
        // Flags below the floor are refused, as by Docker; 0 still means the default.
        let flags = HealthFlags {
            interval: Some(Duration::from_micros(500)),
            ..Default::default()
        };
        let err = resolve(Some(&hostile), &flags).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Interval in Healthcheck cannot be less than 1ms (--health-interval); 0 means the default"
        );
        let zero = HealthFlags {
            interval: Some(Duration::ZERO),
            ..Default::default()
        };
        assert!(resolve(Some(&hostile), &zero).unwrap().is_some());
    }

    #[test]
    fn status_follows_dockers_rules() {
        let mut h = Health::default();
        assert_eq!(h.record(probe(1), 2, true), None, "start period");
        assert_eq!(h.failing_streak, 0);
        assert_eq!(h.record(probe(0), 2, true), Some("healthy".into()));
        assert_eq!(h.record(probe(1), 2, false), None);
        assert_eq!(h.record(probe(1), 2, false), Some("unhealthy".into()));
        assert_eq!(h.failing_streak, 2);
        assert_eq!(h.record(probe(0), 2, false), Some("healthy".into()));
        for _ in 0..10 {
            h.record(probe(0), 2, false);
        }
        assert_eq!(h.log.len(), 5);
    }
}
