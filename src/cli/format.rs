//! Output helpers: Docker's `--format` Go templates (with `table`), column alignment the
//! way Go's tabwriter does it, human sizes and durations as Docker prints them.

use anyhow::{Context as _, Result};
use gtmpl::{Context, Template};

use crate::engine::template::to_value;
use serde_json::Value as Json;

/// A parsed `--format` value.
pub struct Format {
    template: Template,
    /// `table …` prints a header row and aligns columns.
    pub table: bool,
}

impl Format {
    /// Parses a Docker-style format string. `\t` and `\n` escapes are honoured as Docker
    /// does. Returns None for "" / "table" alone, which mean the default table.
    pub fn parse(spec: &str) -> Result<Format> {
        let (table, body) = match spec.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, spec),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut template = crate::engine::template::new();
        template
            .parse(body)
            .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
        Ok(Format { template, table })
    }

    pub fn render(&self, data: &Json) -> Result<String> {
        self.template
            .render(&Context::from(to_value(data)))
            .map_err(|e| anyhow::anyhow!("template: {e}"))
            .context("cannot render --format")
    }
}

/// Aligns tab-separated cells like Go's `tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)`
/// (what Docker uses): each column is as wide as its widest cell plus 3, at least 10;
/// the last cell of a row is not padded.
pub fn align(rows: &[String]) -> String {
    let split: Vec<Vec<&str>> = rows.iter().map(|r| r.split('\t').collect()).collect();
    let columns = split.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for cells in &split {
        for (i, cell) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            widths[i] = widths[i].max((cell.chars().count() + 3).max(10));
        }
    }
    let mut out = String::new();
    for cells in &split {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// Go's `%.*g` for the small positive numbers HumanSize produces.
fn format_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let exp = value.abs().log10().floor() as i32;
    let decimals = (precision as i32 - 1 - exp).max(0) as usize;
    let s = format!("{value:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g(value, 3), UNITS[unit])
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = (secs as f64 / 3600.0 + 0.5) as i64;
    match () {
        _ if secs < 1 => "Less than a second".into(),
        _ if secs == 1 => "1 second".into(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", secs / 3600 / 24 / 365),
    }
}

/// Seconds since an RFC 3339 time, if it parses.
pub fn since_rfc3339(t: &str) -> Option<i64> {
    let then = humantime::parse_rfc3339_weak(t.trim_end_matches('Z').split('+').next()?)
        .or_else(|_| humantime::parse_rfc3339(t))
        .ok()?;
    let now = std::time::SystemTime::now();
    Some(
        now.duration_since(then)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Shortens "sha256:abcdef…" to Docker's 12-character id.
pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_match_docker_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(42_610_000), "42.6MB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
    }

    #[test]
    fn durations_match_docker_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
    }

    #[test]
    fn tabwriter_alignment() {
        let out = align(&["A\tBB\tC".into(), "longer-cell-x\tb\tlast".into()]);
        assert_eq!(
            out,
            "A               BB        C\nlonger-cell-x   b         last\n"
        );
    }

    #[test]
    fn templates_render_fields_json_and_join() {
        let data = json!({"ID": "abc", "Tags": ["a", "b"], "Config": {"Env": ["X=1"]}});
        let f = Format::parse("{{.ID}}\\t{{join .Tags \",\"}} {{json .Config}}").unwrap();
        assert!(!f.table);
        assert_eq!(f.render(&data).unwrap(), "abc\ta,b {\"Env\":[\"X=1\"]}");
        let t = Format::parse("table {{.ID}}").unwrap();
        assert!(t.table);
        assert!(Format::parse("{{.ID").is_err());
    }
}
