//! `events`: what happened to containers and images, as `docker events` prints it. With
//! `--until` it prints what is recorded and returns; otherwise it follows new events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;

use super::format::Format;
use super::out;
use crate::engine::Engine;
use crate::engine::EventRecord;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show events since this time (RFC 3339, Unix seconds, or a duration ago like 10m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Stop at this time instead of following
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Filter: type=container|image, event=ACTION, container=NAME|ID, image=NAME
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Go template, or "json"
    #[arg(long)]
    pub format: Option<String>,
}

/// Nanoseconds since the epoch for Docker's time forms.
fn parse_time(s: &str, now: SystemTime) -> Result<i64> {
    let nanos = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    };
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(nanos(t));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(nanos(now - d));
    }
    bail!("invalid time {s:?}: use RFC 3339, Unix seconds or a duration such as 10m")
}

fn matches(e: &EventRecord, filter: &str) -> Result<bool> {
    let attr = |k: &str| e.attributes.get(k).map(String::as_str).unwrap_or("");
    Ok(match filter.split_once('=') {
        Some(("type", v)) => e.kind == v,
        Some(("event", v)) => e.action == v || e.action.split(':').next() == Some(v),
        Some(("container", v)) => {
            e.kind == "container" && (attr("name") == v || e.actor_id.starts_with(v))
        }
        Some(("image", v)) => attr("image") == v || (e.kind == "image" && attr("name") == v),
        _ => bail!("invalid filter {filter:?}: use type=, event=, container= or image="),
    })
}

fn render(e: &EventRecord, format: &Option<Format>) -> Result<String> {
    let time = humantime::format_rfc3339_nanos(
        UNIX_EPOCH + Duration::from_nanos(e.time_nano.max(0) as u64),
    );
    let attrs = e
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    match format {
        None => Ok(format!(
            "{time} {} {} {} ({attrs})\n",
            e.kind, e.action, e.actor_id
        )),
        Some(f) => {
            let doc = json!({
                "Type": e.kind,
                "Action": e.action,
                "Actor": { "ID": e.actor_id, "Attributes": e.attributes },
                "time": e.time_nano / 1_000_000_000,
                "timeNano": e.time_nano,
                "ID": e.actor_id,
                "Status": e.action,
            });
            Ok(format!("{}\n", f.render(&doc)?))
        }
    }
}

pub fn events(engine: &Engine, a: EventsArgs) -> Result<i32> {
    let now = SystemTime::now();
    let since = a.since.as_deref().map(|s| parse_time(s, now)).transpose()?;
    let until = a.until.as_deref().map(|s| parse_time(s, now)).transpose()?;
    let format = match a.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Format::parse("{{json .}}")?),
        Some(f) => Some(Format::parse(f)?),
    };
    // Without --since only new events; with it, everything recorded from then on.
    let mut seq = if since.is_some() {
        0
    } else {
        engine.events().last_seq()?
    };
    loop {
        let batch = engine.events().after(seq)?;
        let mut text = String::new();
        for e in &batch {
            seq = e.seq;
            if since.is_some_and(|s| e.time_nano < s) {
                continue;
            }
            if until.is_some_and(|u| e.time_nano > u) {
                out(&text);
                return Ok(0);
            }
            let mut keep = true;
            for f in &a.filter {
                keep &= matches(e, f)?;
            }
            if keep {
                text.push_str(&render(e, &format)?);
            }
        }
        out(&text);
        if until.is_some_and(|u| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64 > u)
                .unwrap_or(true)
        }) && batch.is_empty()
        {
            return Ok(0);
        }
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_dockers_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(parse_time("10", now).unwrap(), 10_000_000_000);
        assert_eq!(parse_time("1m", now).unwrap(), 940_000_000_000);
        assert_eq!(
            parse_time("1970-01-01T00:00:05Z", now).unwrap(),
            5_000_000_000
        );
        assert!(parse_time("yesterday-ish", now).is_err());
    }
}
