//! A driver's `--log-opt`s, declared once and checked the way Docker checks them.
//!
//! A driver lists its options as [`Opt`]s (name, kind, default, Docker's message for a bad
//! value) in its [`Spec`](super::driver::Spec); [`Options::parse`] then refuses an unknown
//! key with Docker's "unknown log opt 'x' for NAME log driver", checks every declared option
//! in the order declared (Docker checks one at a time, so the order decides which of two bad
//! options is reported), and hands the driver typed values.
//!
//! ```
//! use burrow_plugin_sdk::log::opts::{self, Opt, Options};
//! use burrow_plugin_sdk::log::Kv;
//!
//! const OPTS: &[Opt] = &[
//!     Opt::size("max-size").at_least(1, "max-size must be a positive number"),
//!     Opt::bool("compress").default("false"),
//!     opts::TAG,
//! ];
//! let kv = |k: &str, v: &str| Kv { key: k.into(), value: v.into() };
//! let o = Options::parse("demo", OPTS, &[kv("max-size", "10k")]).unwrap();
//! assert_eq!(o.int("max-size"), Some(10_000));
//! assert!(!o.flag("compress"));
//! let e = Options::parse("demo", OPTS, &[kv("max-size", "0")]).unwrap_err();
//! assert_eq!(e.to_string(), "max-size must be a positive number");
//! let e = Options::parse("demo", OPTS, &[kv("max-file", "2")]).unwrap_err();
//! assert_eq!(e.to_string(), "unknown log opt 'max-file' for demo log driver");
//! ```

use std::time::Duration;

use thiserror::Error;

use super::{Error, Kv};
use crate::go::{self, GoError};

/// What a value must look like, and how it is parsed (Go's parsers, as Docker's drivers use
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any text.
    Text,
    /// `strconv.ParseBool`: 1, t, T, TRUE, true, True and their false forms.
    Bool,
    /// `strconv.Atoi`: a decimal integer with an optional sign.
    Int,
    /// go-units `FromHumanSize`: `10m` is 10 000 000 bytes (Docker's json-file `max-size`).
    Size,
    /// go-units `RAMInBytes`: `10m` is 10 485 760 bytes.
    RamSize,
    /// `time.ParseDuration`: `1.5s`, `300ms`, `1h2m`; kept in nanoseconds.
    Duration,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// An option the host renders for every driver (`tag`, `labels`, `env` and their
    /// `-regex` forms): declaring it only says that this driver accepts it; its result is
    /// in the container record's `tag` and `attrs`.
    Host,
}

/// One declared option. Build it with the `const` constructors and modifiers, so that a
/// driver's declarations are a `const` slice:
/// `Opt::int("max-file").default("1").at_least(1, "max-file cannot be less than 1")`.
///
/// Messages are templates: `{key}` becomes the option's name, `{value}` the value given and
/// `{err}` the parser's own text (Go's, e.g. `strconv.ParseBool: parsing "x": invalid
/// syntax`).
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub name: &'static str,
    pub kind: Kind,
    /// The kind's parser, chosen when the declaration is made, so that a component links
    /// only the parsers its own declarations use.
    parse: Parser,
    /// Parsed like a value the user gave, when the option is absent.
    pub default: Option<&'static str>,
    /// The message for a value its kind refuses; `{err}` alone when not set.
    pub message: Option<&'static str>,
    /// The least value a numeric kind takes (a duration in nanoseconds), and the message
    /// for one below it.
    pub min: Option<(i64, &'static str)>,
    /// The message for a missing (or, with `empty_is_unset`, empty) option: it is required.
    pub required: Option<&'static str>,
    /// An empty value counts as absent (most Docker drivers test `!= ""`; json-file does
    /// not).
    pub empty_is_unset: bool,
}

/// Parses a value, or says why not in Go's words.
type Parser = fn(&str) -> Result<Value, String>;

fn go_text(e: GoError) -> String {
    e.to_string()
}

impl Opt {
    pub const fn new(name: &'static str, kind: Kind) -> Opt {
        let parse: Parser = match kind {
            Kind::Text | Kind::Host | Kind::OneOf(_) => |v| Ok(Value::Text(v.to_string())),
            Kind::Bool => |v| go::parse_bool(v).map(Value::Bool).map_err(go_text),
            Kind::Int => |v| go::atoi(v).map(Value::Int).map_err(go_text),
            Kind::Size => |v| go::from_human_size(v).map(Value::Int).map_err(go_text),
            Kind::RamSize => |v| go::ram_in_bytes(v).map(Value::Int).map_err(go_text),
            Kind::Duration => |v| go::parse_duration(v).map(Value::Int).map_err(go_text),
        };
        Opt {
            name,
            kind,
            parse,
            default: None,
            message: None,
            min: None,
            required: None,
            empty_is_unset: false,
        }
    }
    pub const fn text(name: &'static str) -> Opt {
        Opt::new(name, Kind::Text)
    }
    pub const fn bool(name: &'static str) -> Opt {
        Opt::new(name, Kind::Bool)
    }
    pub const fn int(name: &'static str) -> Opt {
        Opt::new(name, Kind::Int)
    }
    pub const fn size(name: &'static str) -> Opt {
        Opt::new(name, Kind::Size)
    }
    pub const fn ram_size(name: &'static str) -> Opt {
        Opt::new(name, Kind::RamSize)
    }
    pub const fn duration(name: &'static str) -> Opt {
        Opt::new(name, Kind::Duration)
    }
    pub const fn one_of(name: &'static str, words: &'static [&'static str]) -> Opt {
        Opt::new(name, Kind::OneOf(words))
    }
    pub const fn host(name: &'static str) -> Opt {
        Opt::new(name, Kind::Host)
    }

    /// The value used when the option is absent.
    pub const fn default(self, value: &'static str) -> Opt {
        Opt {
            default: Some(value),
            ..self
        }
    }
    /// Docker's message for a value the kind refuses (`{key}`, `{value}`, `{err}`).
    pub const fn message(self, template: &'static str) -> Opt {
        Opt {
            message: Some(template),
            ..self
        }
    }
    /// Refuses a number below `min` with `template` (`{key}`, `{value}`).
    pub const fn at_least(self, min: i64, template: &'static str) -> Opt {
        Opt {
            min: Some((min, template)),
            ..self
        }
    }
    /// Refuses a missing option with `template` (`{key}`).
    pub const fn required(self, template: &'static str) -> Opt {
        Opt {
            required: Some(template),
            ..self
        }
    }
    /// Checks `value` as a value given for this option is checked.
    pub fn check(&self, value: &str) -> Result<(), OptError> {
        check(self, value).map(drop)
    }

    /// Treats `key=` as if the option were absent.
    pub const fn empty_is_unset(self) -> Opt {
        Opt {
            empty_is_unset: true,
            ..self
        }
    }
}

/// The host-rendered options, to list among a driver's declarations when it accepts them.
pub const TAG: Opt = Opt::host("tag");
pub const LABELS: Opt = Opt::host("labels");
pub const LABELS_REGEX: Opt = Opt::host("labels-regex");
pub const ENV: Opt = Opt::host("env");
pub const ENV_REGEX: Opt = Opt::host("env-regex");

/// Why options were refused, in Docker's words (the host shows them verbatim at `create`).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum OptError {
    #[error("unknown log opt '{key}' for {driver} log driver")]
    Unknown { driver: String, key: String },
    #[error("{message}")]
    Invalid { key: String, message: String },
}

impl OptError {
    /// A refusal the driver decides itself (options that depend on each other).
    pub fn invalid(key: &str, message: impl Into<String>) -> OptError {
        OptError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl From<OptError> for Error {
    fn from(e: OptError) -> Error {
        Error::InvalidConfig(e.to_string())
    }
}

/// A checked value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Bool(bool),
    /// Int, sizes, and durations in nanoseconds.
    Int(i64),
}

/// The options of one container, checked against the declarations. The typed getters take
/// a declared name; asking for an undeclared one is a driver bug (debug builds, and so
/// `cargo test`, panic on it; release builds answer none).
#[derive(Debug, Clone)]
pub struct Options {
    given: Vec<Kv>,
    decls: &'static [Opt],
    values: Vec<Option<Value>>,
}

impl Options {
    /// Checks `given` against `decls`: the first unknown key (in the order given), then each
    /// declared option in the order declared. A key given twice keeps its last value, as in
    /// Docker's map.
    pub fn parse(driver: &str, decls: &'static [Opt], given: &[Kv]) -> Result<Options, OptError> {
        if let Some(kv) = given
            .iter()
            .find(|kv| !decls.iter().any(|d| d.name == kv.key))
        {
            return Err(OptError::Unknown {
                driver: driver.to_string(),
                key: kv.key.clone(),
            });
        }
        let mut values = Vec::with_capacity(decls.len());
        for d in decls {
            let raw = last(given, d.name).filter(|v| !(d.empty_is_unset && v.is_empty()));
            let value = match raw {
                Some(v) => Some(check(d, v)?),
                None => {
                    if let Some(t) = d.required {
                        return Err(OptError::invalid(d.name, render(t, d.name, "", "")));
                    }
                    // A default is the driver's own constant (`testing::check_spec` tests
                    // that each one parses): a bad one reads as absent, never as the
                    // user's mistake.
                    d.default.and_then(|def| check(d, def).ok())
                }
            };
            values.push(value);
        }
        Ok(Options {
            given: given.to_vec(),
            decls,
            values,
        })
    }

    /// The options as given (the host has removed `mode`, `max-buffer-size` and `cache-*`).
    pub fn given(&self) -> &[Kv] {
        &self.given
    }

    /// True when the user gave `key` (even empty).
    pub fn is_set(&self, key: &str) -> bool {
        last(&self.given, key).is_some()
    }

    /// The value given for `key` as is (the last one when repeated); none when absent.
    pub fn raw(&self, key: &str) -> Option<&str> {
        last(&self.given, key)
    }

    fn value(&self, key: &str) -> Option<&Value> {
        let i = self.decls.iter().position(|d| d.name == key);
        debug_assert!(i.is_some(), "log opt {key:?} is not declared");
        self.values.get(i?)?.as_ref()
    }

    /// A `Text` or `OneOf` option's value, else its default.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.value(key)? {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A `Bool` option's value, else its default, else false.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.value(key), Some(Value::Bool(true)))
    }

    /// An `Int`, `Size` or `RamSize` option's value (a `Duration`'s in nanoseconds), else
    /// its default.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.value(key)? {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// A `Duration` option's value, else its default; none when negative.
    pub fn duration(&self, key: &str) -> Option<Duration> {
        let ns = u64::try_from(self.int(key)?).ok()?;
        Some(Duration::from_nanos(ns))
    }
}

/// The last value given for `key`.
fn last<'a>(given: &'a [Kv], key: &str) -> Option<&'a str> {
    given
        .iter()
        .rev()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

fn check(d: &Opt, v: &str) -> Result<Value, OptError> {
    let refused = |err: String| {
        let t = d.message.unwrap_or("{err}");
        OptError::invalid(d.name, render(t, d.name, v, &err))
    };
    if let Kind::OneOf(words) = d.kind {
        if !words.contains(&v) {
            return Err(refused(format!(
                "invalid value '{v}' for log opt '{}': use one of {}",
                d.name,
                words.join(", ")
            )));
        }
    }
    let value = (d.parse)(v).map_err(refused)?;
    if let (Some((min, t)), Value::Int(n)) = (d.min, &value) {
        if *n < min {
            return Err(OptError::invalid(d.name, render(t, d.name, v, "")));
        }
    }
    Ok(value)
}

fn render(template: &str, key: &str, value: &str, err: &str) -> String {
    // One pass, so that a value containing "{err}" is not expanded again.
    let mut out = String::with_capacity(template.len() + value.len() + err.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (text, skip) = if tail.starts_with("{key}") {
            (key, 5)
        } else if tail.starts_with("{value}") {
            (value, 7)
        } else if tail.starts_with("{err}") {
            (err, 5)
        } else {
            ("{", 1)
        };
        out.push_str(text);
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<Kv> {
        pairs
            .iter()
            .map(|(k, v)| Kv {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect()
    }

    const DECLS: &[Opt] = &[
        Opt::text("group")
            .empty_is_unset()
            .required("must specify a value for log opt '{key}'"),
        Opt::bool("create")
            .empty_is_unset()
            .message("must specify valid value for log opt '{key}': {err}"),
        Opt::int("count")
            .default("4096")
            .at_least(
                1,
                "must specify a positive integer for log opt '{key}': {value}",
            )
            .message("must specify a positive integer for log opt '{key}': {value}"),
        Opt::ram_size("buffer").default("1m"),
        Opt::duration("wait").default("1s"),
        Opt::one_of("format", &["rfc3164", "rfc5424"]),
        TAG,
    ];

    fn parse(pairs: &[(&str, &str)]) -> Result<Options, OptError> {
        Options::parse("demo", DECLS, &kv(pairs))
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        parse(pairs).unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply_when_absent() {
        let o = parse(&[("group", "g")]).unwrap();
        assert_eq!(o.text("group"), Some("g"));
        assert!(!o.flag("create"));
        assert_eq!(o.int("count"), Some(4096));
        assert_eq!(o.int("buffer"), Some(1 << 20));
        assert_eq!(o.duration("wait"), Some(Duration::from_secs(1)));
        assert_eq!(o.text("format"), None);
        assert_eq!(o.text("tag"), None);
        assert!(!o.is_set("count"));
    }

    #[test]
    fn values_are_typed_and_the_last_one_wins() {
        let o = parse(&[
            ("group", "g"),
            ("create", "T"),
            ("count", "1"),
            ("count", "+7"),
            ("wait", "1.5s"),
            ("format", "rfc5424"),
            ("tag", "{{.Name}}"),
        ])
        .unwrap();
        assert!(o.flag("create"));
        assert_eq!(o.int("count"), Some(7));
        assert_eq!(o.raw("count"), Some("+7"));
        assert_eq!(o.duration("wait"), Some(Duration::from_millis(1500)));
        assert_eq!(o.text("format"), Some("rfc5424"));
        assert_eq!(o.text("tag"), Some("{{.Name}}"));
        assert_eq!(o.given().len(), 7);
    }

    #[test]
    fn messages_follow_the_templates() {
        assert_eq!(
            err(&[("group", "g"), ("max-size", "1m")]),
            "unknown log opt 'max-size' for demo log driver"
        );
        assert_eq!(err(&[]), "must specify a value for log opt 'group'");
        assert_eq!(
            err(&[("group", "g"), ("create", "yes")]),
            "must specify valid value for log opt 'create': strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        assert_eq!(
            err(&[("group", "g"), ("count", "0")]),
            "must specify a positive integer for log opt 'count': 0"
        );
        assert_eq!(
            err(&[("group", "g"), ("count", "x")]),
            "must specify a positive integer for log opt 'count': x"
        );
        assert_eq!(
            err(&[("group", "g"), ("buffer", "1x")]),
            "invalid suffix: 'x'"
        );
        assert_eq!(
            err(&[("group", "g"), ("wait", "3d")]),
            "time: unknown unit \"d\" in duration \"3d\""
        );
        assert_eq!(
            err(&[("group", "g"), ("format", "rfc5425")]),
            "invalid value 'rfc5425' for log opt 'format': use one of rfc3164, rfc5424"
        );
    }

    #[test]
    fn unknown_keys_come_first_then_the_declared_order() {
        // Two bad options: the one declared first is reported, whatever the order given.
        assert_eq!(
            err(&[("count", "0"), ("create", "yes"), ("group", "g")]),
            "must specify valid value for log opt 'create': strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        assert_eq!(
            err(&[("count", "0"), ("nope", "1")]),
            "unknown log opt 'nope' for demo log driver"
        );
    }

    #[test]
    fn empty_values() {
        // `empty_is_unset`: an empty group is a missing group; an empty bool is no bool.
        assert_eq!(
            err(&[("group", "")]),
            "must specify a value for log opt 'group'"
        );
        assert!(
            !parse(&[("group", "g"), ("create", "")])
                .unwrap()
                .flag("create")
        );
        // Without it, an empty value is checked like any other.
        assert_eq!(
            err(&[("group", "g"), ("count", "")]),
            "must specify a positive integer for log opt 'count': "
        );
    }

    #[test]
    fn every_default_parses() {
        for d in DECLS {
            if let Some(def) = d.default {
                assert!(d.check(def).is_ok(), "{}", d.name);
            }
        }
        assert!(Opt::int("n").at_least(1, "m").check("0").is_err());
    }

    #[test]
    fn templates_expand_once() {
        assert_eq!(
            render("{key}={value}: {err} {x}", "k", "{err}", "E"),
            "k={err}: E {x}"
        );
    }

    #[test]
    fn refusals_become_invalid_config() {
        let e: Error = OptError::invalid("k", "bad k").into();
        assert!(
            matches!(e, Error::InvalidConfig(ref m) if m == "bad k"),
            "{e:?}"
        );
    }
}
