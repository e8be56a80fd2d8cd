//! Instruction flags (`COPY --from=build --chown=1:1`), parsed as BuildKit's `BFlags`: each
//! instruction declares the flags it takes, anything else is refused.

use std::collections::HashMap;

use super::error::{ParseErrorKind, closest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `--link`, `--link=true`, `--link=false`.
    Bool,
    /// `--from=x`, once.
    String,
    /// `--mount=x`, any number of times.
    Strings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Bool(bool),
    String(String),
    Strings(Vec<String>),
}

/// The flags an instruction was given.
#[derive(Debug, Default)]
pub(super) struct Flags {
    values: HashMap<&'static str, Value>,
}

impl Flags {
    /// Check `args` against the flags an instruction takes (`defs`). A `--` word ends the
    /// flags.
    pub(super) fn parse(
        args: &[String],
        defs: &[(&'static str, Kind)],
    ) -> Result<Flags, ParseErrorKind> {
        let mut flags = Flags::default();
        for a in args {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(ParseErrorKind::NotAFlag(a.clone()));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let flag = format!("--{name}");
            let Some(&(key, kind)) = defs.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = defs.iter().map(|(n, _)| *n).collect();
                return Err(ParseErrorKind::UnknownFlag {
                    suggestion: closest(name, &names, true),
                    flag,
                });
            };
            if kind != Kind::Strings && flags.values.contains_key(key) {
                return Err(ParseErrorKind::DuplicateFlag(flag));
            }
            let parsed = match (kind, value) {
                (Kind::Bool, Some("")) => return Err(ParseErrorKind::MissingFlagValue(flag)),
                (Kind::Bool, None) => Value::Bool(true),
                (Kind::Bool, Some(v)) => match v.to_lowercase().as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => {
                        return Err(ParseErrorKind::FlagNotBool {
                            flag,
                            value: v.to_string(),
                        });
                    }
                },
                (_, None) => return Err(ParseErrorKind::MissingFlagValue(flag)),
                (Kind::String, Some(v)) => Value::String(v.to_string()),
                (Kind::Strings, Some(v)) => {
                    let mut all = match flags.values.remove(key) {
                        Some(Value::Strings(all)) => all,
                        _ => Vec::new(),
                    };
                    all.push(v.to_string());
                    Value::Strings(all)
                }
            };
            flags.values.insert(key, parsed);
        }
        Ok(flags)
    }

    /// A bool flag's value; `None` when it was not given.
    pub(super) fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// A string flag's value; `None` when it was not given.
    pub(super) fn string(&self, name: &str) -> Option<String> {
        match self.values.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// Every value of a repeatable flag, in order.
    pub(super) fn strings(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(Value::Strings(v)) => v.clone(),
            _ => Vec::new(),
        }
    }
}

/// Go's `time.ParseDuration`, in nanoseconds: `300ms`, `1.5h`, `2h45m`, `-1s`, `0`.
pub(super) fn go_duration(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let nanos = total.round() as i128;
    Some(if negative { -nanos } else { nanos })
}
