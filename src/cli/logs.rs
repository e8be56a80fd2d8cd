//! `logs`: what a container wrote, read back through its log driver (or the local cache).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::engine::{Engine, LogLine, LogsOptions};

#[derive(Args, Debug)]
pub struct LogsArgs {
    pub container: String,
    /// Follow log output while the container runs
    #[arg(short, long)]
    pub follow: bool,
    /// Show logs since a timestamp (2013-01-02T13:23:37Z), Unix time, or relative (42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (2013-01-02T13:23:37Z), Unix time, or relative (42m)
    #[arg(long)]
    pub until: Option<String>,
    /// Number of lines to show from the end of the logs, or "all"
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show extra details provided to logs (labels, env, tag)
    #[arg(long)]
    pub details: bool,
}

/// Docker's `--since` / `--until`: RFC 3339, Unix seconds (with a fraction), or a duration
/// before now. Nanoseconds since the epoch.
fn parse_time(flag: &str, s: &str, now: SystemTime) -> Result<u64> {
    let ns = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    };
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as u64);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(ns(now.checked_sub(d).unwrap_or(UNIX_EPOCH)));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(ns(t));
    }
    bail!(
        "invalid value for --{flag} {s:?}: use a timestamp (2013-01-02T13:23:37Z), Unix seconds or a duration (10m)"
    )
}

/// Go's url.QueryEscape.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The prefix `-t` and `--details` put before a line, as Docker writes it.
fn prefix(line: &LogLine, timestamps: bool, details: bool) -> String {
    let mut p = String::new();
    if timestamps {
        let t = UNIX_EPOCH + Duration::from_nanos(line.time_ns);
        p.push_str(&humantime::format_rfc3339_nanos(t).to_string());
        p.push(' ');
    }
    if details {
        let attrs: Vec<String> = line
            .attrs
            .iter()
            .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
            .collect();
        p.push_str(&attrs.join(","));
        p.push(' ');
    }
    p
}

pub fn logs(engine: &Engine, a: LogsArgs) -> Result<i32> {
    let now = SystemTime::now();
    let tail =
        match a.tail.as_str() {
            "all" | "-1" => None,
            n => Some(n.parse::<u32>().with_context(|| {
                format!("invalid value for --tail {n:?}: use a number or \"all\"")
            })?),
        };
    let opts = LogsOptions {
        since_ns: a
            .since
            .as_deref()
            .map(|s| parse_time("since", s, now))
            .transpose()?,
        until_ns: a
            .until
            .as_deref()
            .map(|s| parse_time("until", s, now))
            .transpose()?,
        tail,
        follow: a.follow,
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = std::io::BufWriter::new(stdout.lock());
    engine.containers().logs(&a.container, &opts, &mut |line| {
        let p = prefix(&line, a.timestamps, a.details);
        if line.stderr {
            out.flush()?;
            let mut err = stderr.lock();
            err.write_all(p.as_bytes())?;
            err.write_all(&line.bytes)
        } else {
            out.write_all(p.as_bytes())?;
            out.write_all(&line.bytes)?;
            if a.follow { out.flush() } else { Ok(()) }
        }
    })?;
    out.flush()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_dockers_client() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_time("since", "10m", now).unwrap(),
            (1_000_000 - 600) * 1_000_000_000
        );
        assert_eq!(
            parse_time("since", "1500.5", now).unwrap(),
            1_500_500_000_000
        );
        assert_eq!(
            parse_time("since", "1970-01-02T00:00:00Z", now).unwrap(),
            86_400 * 1_000_000_000
        );
        assert!(parse_time("since", "yesterday", now).is_err());
    }

    #[test]
    fn prefixes_are_dockers() {
        let line = LogLine {
            time_ns: 1_700_000_000_000_000_000 + 5,
            stderr: false,
            bytes: b"x\n".to_vec(),
            attrs: vec![
                ("tag".into(), "jf1/local/bb:1".into()),
                ("a b".into(), "1".into()),
            ],
        };
        assert_eq!(
            prefix(&line, true, false),
            "2023-11-14T22:13:20.000000005Z "
        );
        assert_eq!(
            prefix(&line, false, true),
            "tag=jf1%2Flocal%2Fbb%3A1,a+b=1 "
        );
        let bare = LogLine {
            attrs: vec![],
            ..line
        };
        assert_eq!(prefix(&bare, false, true), " ");
    }
}
