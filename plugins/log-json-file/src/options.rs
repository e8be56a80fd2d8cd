//! The json-file `--log-opt`s, checked with dockerd's messages (moby
//! `jsonfilelog.go`: `ValidateLogOpt` for the keys, `New` for the values).

use burrow_plugin_sdk::log::Kv;

/// What the writer and the reader need from the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `max-size` in bytes; `None` = never rotate (Docker's -1).
    pub max_size: Option<u64>,
    /// `max-file`: how many files to keep in total, the current one included.
    pub max_file: u32,
    pub compress: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_size: None,
            max_file: 1,
            compress: false,
        }
    }
}

/// Messages are dockerd's, word for word (Go's `strconv` errors included), because the host
/// shows them verbatim at `create`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error("unknown log opt '{key}' for json-file log driver")]
    Unknown { key: String },
    #[error("invalid size: '{value}'")]
    InvalidSize { value: String },
    #[error("strconv.ParseFloat: parsing {value:?}: invalid syntax")]
    SizeSyntax { value: String },
    #[error("max-size must be a positive number")]
    SizeNotPositive,
    #[error("strconv.Atoi: parsing {value:?}: {reason}")]
    MaxFileNotInteger { value: String, reason: &'static str },
    #[error("max-file cannot be less than 1")]
    MaxFileTooSmall,
    #[error("strconv.ParseBool: parsing {value:?}: invalid syntax")]
    CompressNotBool { value: String },
    #[error("compress cannot be true when max-file is less than 2 or max-size is not set")]
    CompressWithoutRotation,
}

/// Keys json-file accepts; `labels`, `labels-regex`, `env`, `env-regex` and `tag` are
/// rendered by the host into the container's `attrs`.
const KEYS: &[&str] = &[
    "max-file",
    "max-size",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

impl Config {
    /// Checks every key first (as `docker create` does), then the values in moby's order.
    /// A repeated key keeps its last value, like a Go map.
    pub fn parse(opts: &[Kv]) -> Result<Self, OptionError> {
        if let Some(kv) = opts.iter().find(|kv| !KEYS.contains(&kv.key.as_str())) {
            return Err(OptionError::Unknown {
                key: kv.key.clone(),
            });
        }
        let get = |key: &str| {
            opts.iter()
                .rev()
                .find(|kv| kv.key == key)
                .map(|kv| kv.value.as_str())
        };
        let mut cfg = Config::default();
        if let Some(v) = get("max-size") {
            let size = from_human_size(v)?;
            if size <= 0 {
                return Err(OptionError::SizeNotPositive);
            }
            cfg.max_size = Some(size as u64);
        }
        if let Some(v) = get("max-file") {
            let n = atoi(v)?;
            if n < 1 {
                return Err(OptionError::MaxFileTooSmall);
            }
            cfg.max_file = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(v) = get("compress") {
            cfg.compress = parse_bool(v)?;
            if cfg.compress && (cfg.max_file == 1 || cfg.max_size.is_none()) {
                return Err(OptionError::CompressWithoutRotation);
            }
        }
        Ok(cfg)
    }
}

/// go-units `FromHumanSize` as vendored by dockerd 20.10: the string must match
/// `(?i)^(\d+(\.\d+)*) ?([kmgtp])?i?b?$`, the number is parsed as a float, multiplied by the
/// decimal unit and truncated to an integer.
pub fn from_human_size(s: &str) -> Result<i64, OptionError> {
    let invalid = || OptionError::InvalidSize {
        value: s.to_owned(),
    };
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return Err(invalid());
    }
    while i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        if !digits(&mut j) {
            break;
        }
        i = j;
    }
    let number = &s[..i];
    let mut rest = &b[i..];
    if let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    let mut mul = 1i64;
    if let [u, tail @ ..] = rest {
        let unit = match u.to_ascii_lowercase() {
            b'k' => Some(1_000),
            b'm' => Some(1_000_000),
            b'g' => Some(1_000_000_000),
            b't' => Some(1_000_000_000_000),
            b'p' => Some(1_000_000_000_000_000),
            _ => None,
        };
        if let Some(m) = unit {
            mul = m;
            rest = tail;
        }
    }
    if let [b'i' | b'I', tail @ ..] = rest {
        rest = tail;
    }
    if let [b'b' | b'B', tail @ ..] = rest {
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| OptionError::SizeSyntax {
        value: number.to_owned(),
    })?;
    let size = value * mul as f64;
    // Go's float-to-int64 conversion on amd64 yields MinInt64 when out of range.
    if size >= i64::MAX as f64 {
        return Ok(i64::MIN);
    }
    Ok(size as i64)
}

/// Go's `strconv.Atoi` on a 64-bit platform.
fn atoi(s: &str) -> Result<i64, OptionError> {
    use std::num::IntErrorKind;
    s.parse::<i64>()
        .map_err(|e| OptionError::MaxFileNotInteger {
            value: s.to_owned(),
            reason: match e.kind() {
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "value out of range",
                _ => "invalid syntax",
            },
        })
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Result<bool, OptionError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(OptionError::CompressNotBool {
            value: s.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<Kv> {
        pairs
            .iter()
            .map(|(k, v)| Kv {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        Config::parse(&opts(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_accepted_keys() {
        assert_eq!(Config::parse(&[]).unwrap(), Config::default());
        let cfg = Config::parse(&opts(&[
            ("max-size", "1k"),
            ("max-file", "3"),
            ("compress", "true"),
            ("labels", "a,b"),
            ("labels-regex", "^a"),
            ("env", "E1"),
            ("env-regex", "^E"),
            ("tag", "{{.Name}}"),
        ]))
        .unwrap();
        assert_eq!(
            cfg,
            Config {
                max_size: Some(1000),
                max_file: 3,
                compress: true
            }
        );
    }

    #[test]
    fn sizes_follow_go_units() {
        let ok = |s: &str| from_human_size(s).unwrap();
        assert_eq!(ok("100"), 100);
        assert_eq!(ok("10m"), 10_000_000);
        assert_eq!(ok("10M"), 10_000_000);
        assert_eq!(ok("1.5m"), 1_500_000);
        assert_eq!(ok("1.1k"), 1100);
        assert_eq!(ok("2 kB"), 2000);
        assert_eq!(ok("3KiB"), 3000); // FromHumanSize is decimal even with "i"
        assert_eq!(ok("7b"), 7);
        assert_eq!(ok("1g"), 1_000_000_000);
        for bad in ["", "k", "-1", "1x", "1  k", " 1", "1kbb", "1.", ".5"] {
            assert_eq!(
                from_human_size(bad),
                Err(OptionError::InvalidSize { value: bad.into() }),
                "{bad:?}"
            );
        }
        assert_eq!(
            err(&[("max-size", "1.2.3k")]),
            "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax"
        );
    }

    #[test]
    fn dockers_messages() {
        assert_eq!(
            err(&[("max-size", "1m"), ("foo", "1")]),
            "unknown log opt 'foo' for json-file log driver"
        );
        assert_eq!(
            err(&[("max-size", "0")]),
            "max-size must be a positive number"
        );
        assert_eq!(
            err(&[("max-size", "0.4")]),
            "max-size must be a positive number"
        );
        assert_eq!(err(&[("max-size", "abc")]), "invalid size: 'abc'");
        assert_eq!(err(&[("max-file", "0")]), "max-file cannot be less than 1");
        assert_eq!(err(&[("max-file", "-2")]), "max-file cannot be less than 1");
        assert_eq!(
            err(&[("max-file", "x")]),
            "strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            err(&[("max-file", "99999999999999999999")]),
            "strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(
            err(&[("compress", "yes")]),
            "strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        let no_rotation =
            "compress cannot be true when max-file is less than 2 or max-size is not set";
        assert_eq!(err(&[("compress", "true")]), no_rotation);
        assert_eq!(err(&[("compress", "1"), ("max-size", "1k")]), no_rotation);
        assert_eq!(err(&[("compress", "t"), ("max-file", "3")]), no_rotation);
        // compress=false never complains; max-file without max-size is accepted.
        assert!(Config::parse(&opts(&[("compress", "false"), ("max-file", "5")])).is_ok());
    }

    #[test]
    fn last_value_wins() {
        let cfg = Config::parse(&opts(&[("max-file", "0"), ("max-file", "2")])).unwrap();
        assert_eq!(cfg.max_file, 2);
    }
}
