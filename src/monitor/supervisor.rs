//! The monitor's loop (`burrow __monitor ID`): runs the container, restarts it as its policy
//! says with Docker's increasing delay, and tells the command that started it how the first
//! start went. What running the container means (recording it, its networks, its prober,
//! `--rm`) is the engine's, reached through [`Supervised`].

use std::fs::File;
use std::time::{Duration, Instant};

use super::{Backoff, Ready, RestartPolicy, send_ready};

/// One run of the container, as the engine saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Its exit code (128+signal when killed; 125-127 when burrow could not start it).
    pub code: i32,
    /// Why it did not start, when it did not.
    pub start_error: Option<String>,
}

/// What the supervisor needs of the engine for the one container it watches.
pub trait Supervised {
    type Error;
    /// Runs the container once, recording it; `started` gets the host pid of its pid 1
    /// once its command runs. An error ends the monitor (the state could not be kept).
    fn run_once(&mut self, started: &mut dyn FnMut(i32)) -> Result<Run, Self::Error>;
    /// Whether a command asked for the container to stay stopped (`stop`, `kill`, `rm -f`).
    fn stop_requested(&mut self) -> Result<bool, Self::Error>;
    /// How many times the container restarted so far.
    fn restarts(&self) -> u32;
    /// Records the container as waiting out a restart delay, after a run that ended with
    /// `code` (attached clients hear of that exit).
    fn restarting(&mut self, code: i32) -> Result<(), Self::Error>;
    /// Sleeps `delay` unless a stop is requested first; true when it was (the container is
    /// then recorded as exited).
    fn wait_unless_stopped(&mut self, delay: Duration) -> Result<bool, Self::Error>;
    /// Counts one restart.
    fn restarted(&mut self);
    /// The monitor lets go: records it, honours `--rm`, tells clients the last exit.
    fn finish(&mut self, code: i32) -> Result<(), Self::Error>;
}

/// Runs the container under `policy` until it stays stopped; returns its last exit code.
/// `ready` gets one message for the command that started the monitor: the pid once the
/// first run's command runs, or why it did not.
pub fn supervise<S: Supervised>(
    s: &mut S,
    policy: RestartPolicy,
    ready: &mut Option<File>,
) -> Result<i32, S::Error> {
    let mut backoff = Backoff::default();
    let code = loop {
        let began = Instant::now();
        let run = s.run_once(&mut |pid| {
            if let Some(mut r) = ready.take() {
                let _ = send_ready(&mut r, &Ready::Started { pid });
            }
        })?;
        let stop_requested = s.stop_requested()?;
        if let (Some(message), Some(mut r)) = (&run.start_error, ready.take()) {
            // The first start failed: say so to whoever is waiting, and stop here.
            let _ = send_ready(
                &mut r,
                &Ready::Failed {
                    code: run.code,
                    message: message.clone(),
                },
            );
            break run.code;
        }
        if !policy.should_restart(run.code, s.restarts(), stop_requested) {
            break run.code;
        }
        let delay = backoff.next(began.elapsed());
        s.restarting(run.code)?;
        if s.wait_unless_stopped(delay)? {
            break run.code;
        }
        s.restarted();
    };
    s.finish(code)?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container whose runs end with the given codes, in order; records what the
    /// supervisor did.
    #[derive(Default)]
    struct Fake {
        codes: Vec<Run>,
        runs: usize,
        restarts: u32,
        stop_after_run: Option<usize>,
        stop_during_delay: bool,
        delays: Vec<Duration>,
        log: Vec<String>,
    }

    impl Fake {
        fn exits(codes: &[i32]) -> Fake {
            Fake {
                codes: codes
                    .iter()
                    .map(|&code| Run {
                        code,
                        start_error: None,
                    })
                    .collect(),
                ..Fake::default()
            }
        }
    }

    impl Supervised for Fake {
        type Error = String;
        fn run_once(&mut self, started: &mut dyn FnMut(i32)) -> Result<Run, String> {
            let run = self.codes.get(self.runs).cloned().ok_or("ran too often")?;
            self.runs += 1;
            if run.start_error.is_none() {
                started(100 + self.runs as i32);
            }
            self.log.push(format!("run {}", run.code));
            Ok(run)
        }
        fn stop_requested(&mut self) -> Result<bool, String> {
            Ok(self.stop_after_run.is_some_and(|n| self.runs >= n))
        }
        fn restarts(&self) -> u32 {
            self.restarts
        }
        fn restarting(&mut self, code: i32) -> Result<(), String> {
            self.log.push(format!("restarting after {code}"));
            Ok(())
        }
        fn wait_unless_stopped(&mut self, delay: Duration) -> Result<bool, String> {
            self.delays.push(delay);
            Ok(self.stop_during_delay)
        }
        fn restarted(&mut self) {
            self.restarts += 1;
        }
        fn finish(&mut self, code: i32) -> Result<(), String> {
            self.log.push(format!("finish {code}"));
            Ok(())
        }
    }

    fn ready_pipe() -> (Option<File>, std::io::PipeReader) {
        let (r, w) = std::io::pipe().unwrap();
        (Some(File::from(std::os::fd::OwnedFd::from(w))), r)
    }

    #[test]
    fn no_policy_runs_once_and_reports_the_pid() {
        let mut f = Fake::exits(&[3]);
        let (mut ready, r) = ready_pipe();
        assert_eq!(supervise(&mut f, RestartPolicy::No, &mut ready), Ok(3));
        assert!(ready.is_none(), "the message was sent");
        assert_eq!(
            super::super::recv_ready(r),
            Some(Ready::Started { pid: 101 })
        );
        assert_eq!(f.log, ["run 3", "finish 3"]);
    }

    #[test]
    fn on_failure_restarts_up_to_its_limit_with_dockers_delays() {
        let mut f = Fake::exits(&[1, 1, 1, 1]);
        let policy = RestartPolicy::OnFailure { max_retries: 2 };
        assert_eq!(supervise(&mut f, policy, &mut None), Ok(1));
        assert_eq!(f.runs, 3, "the first run and two retries");
        assert_eq!(f.restarts, 2);
        assert_eq!(
            f.delays,
            [Duration::from_millis(100), Duration::from_millis(200)]
        );
        let mut ok = Fake::exits(&[1, 0]);
        assert_eq!(supervise(&mut ok, policy, &mut None), Ok(0));
        assert_eq!(ok.log, ["run 1", "restarting after 1", "run 0", "finish 0"]);
    }

    #[test]
    fn a_stop_request_ends_always_and_the_delay() {
        let mut f = Fake::exits(&[0, 0]);
        f.stop_after_run = Some(1);
        assert_eq!(supervise(&mut f, RestartPolicy::Always, &mut None), Ok(0));
        assert_eq!(f.runs, 1, "a stopped container is not restarted");
        let mut g = Fake::exits(&[2, 2]);
        g.stop_during_delay = true;
        assert_eq!(supervise(&mut g, RestartPolicy::Always, &mut None), Ok(2));
        assert_eq!(g.log, ["run 2", "restarting after 2", "finish 2"]);
        assert_eq!(g.restarts, 0);
    }

    #[test]
    fn a_failed_first_start_is_reported_and_never_retried() {
        let mut f = Fake {
            codes: vec![Run {
                code: 127,
                start_error: Some("not found".into()),
            }],
            ..Fake::default()
        };
        let (mut ready, r) = ready_pipe();
        assert_eq!(
            supervise(&mut f, RestartPolicy::Always, &mut ready),
            Ok(127)
        );
        assert_eq!(
            super::super::recv_ready(r),
            Some(Ready::Failed {
                code: 127,
                message: "not found".into()
            })
        );
        assert_eq!(f.log, ["run 127", "finish 127"]);
    }
}
