//! The json-file `--log-opt`s, checked with dockerd's messages (moby
//! `jsonfilelog.go`: `ValidateLogOpt` for the keys, `New` for the values, in its order:
//! max-size, max-file, compress).

use burrow_plugin_sdk::log::Kv;
use burrow_plugin_sdk::log::opts::{self, Opt, OptError, Options};

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

/// The options json-file takes. `labels`, `labels-regex`, `env`, `env-regex` and `tag` are
/// rendered by the host into the container's `attrs`. Messages are dockerd's, word for word
/// (Go's `strconv` and go-units errors included), because the host shows them verbatim at
/// `create`.
pub const OPTIONS: &[Opt] = &[
    // go-units FromHumanSize: decimal, "1k" is 1000 bytes.
    Opt::size("max-size").at_least(1, "max-size must be a positive number"),
    Opt::int("max-file")
        .default("1")
        .at_least(1, "max-file cannot be less than 1"),
    Opt::bool("compress"),
    opts::LABELS,
    opts::LABELS_REGEX,
    opts::ENV,
    opts::ENV_REGEX,
    opts::TAG,
];

const COMPRESS_WITHOUT_ROTATION: &str =
    "compress cannot be true when max-file is less than 2 or max-size is not set";

impl Config {
    /// Checks every key first (as `docker create` does), then the values in moby's order.
    /// A repeated key keeps its last value, like a Go map.
    pub fn parse(opts: &[Kv]) -> Result<Self, OptError> {
        Config::from_options(&Options::parse("json-file", OPTIONS, opts)?)
    }

    /// The configuration from options that passed their declarations.
    pub fn from_options(o: &Options) -> Result<Self, OptError> {
        let cfg = Config {
            max_size: o.int("max-size").map(|n| n as u64),
            max_file: o
                .int("max-file")
                .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            compress: o.flag("compress"),
        };
        if cfg.compress && (cfg.max_file == 1 || cfg.max_size.is_none()) {
            return Err(OptError::invalid("compress", COMPRESS_WITHOUT_ROTATION));
        }
        Ok(cfg)
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
        // go-units FromHumanSize itself is tested in the SDK (burrow_plugin_sdk::go).
        let size = |s: &str| Config::parse(&opts(&[("max-size", s)])).unwrap().max_size;
        assert_eq!(size("10m"), Some(10_000_000));
        assert_eq!(size("1.5m"), Some(1_500_000));
        assert_eq!(size("2 kB"), Some(2000));
        assert_eq!(size("3KiB"), Some(3000)); // FromHumanSize is decimal even with "i"
        for bad in ["", "k", "-1", "1x", "1  k", " 1", "1kbb", "1.", ".5"] {
            assert_eq!(
                err(&[("max-size", bad)]),
                format!("invalid size: '{bad}'"),
                "{bad:?}"
            );
        }
        assert_eq!(
            err(&[("max-size", "1.2.3k")]),
            "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax"
        );
        // Too big for an int64: Go's conversion gives MinInt64, which is not positive.
        assert_eq!(
            err(&[("max-size", "99999999999p")]),
            "max-size must be a positive number"
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
