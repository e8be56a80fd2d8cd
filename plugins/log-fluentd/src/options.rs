//! The fluentd driver's options, checked as moby's `daemon/logger/fluentd` does, with its
//! messages, and read as fluent-logger-golang reads the values moby hands it (zero often
//! means "the library's default").

use std::time::Duration;

use burrow_plugin_sdk::go::{self as goparse, GoError};
use burrow_plugin_sdk::log::Kv;
use burrow_plugin_sdk::log::opts::{self, Opt, OptError, Options};
use thiserror::Error;

pub const DEFAULT_ADDRESS: &str = "tcp://127.0.0.1:24224";
/// moby's defaultBufferLimit.
pub const DEFAULT_BUFFER_LIMIT: usize = 1024 * 1024;
/// fluent-logger-golang's defaultBufferLimit, which replaces a limit of zero.
const LIBRARY_BUFFER_LIMIT: usize = 8 * 1024;
/// moby's defaultRetryWait (1000 ms).
pub const DEFAULT_RETRY_WAIT: Duration = Duration::from_secs(1);
/// fluent-logger-golang's defaultRetryWait, which replaces a wait under 1 ms.
const LIBRARY_RETRY_WAIT: Duration = Duration::from_millis(500);
/// moby's defaultMaxRetries (math.MaxInt32).
pub const DEFAULT_MAX_RETRIES: u32 = i32::MAX as u32;
/// fluent-logger-golang's defaultMaxRetry, which replaces zero.
const LIBRARY_MAX_RETRIES: u32 = 13;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `endpoints` address: `tcp://host:port` or `unix:///path`.
    pub endpoint: String,
    /// `tls://`: the tcp connection is wrapped in TLS.
    pub tls: bool,
    /// fluentd-async (or the older fluentd-async-connect, which fluent-logger-golang now
    /// treats the same): start without connecting, and buffer instead of waiting.
    pub is_async: bool,
    /// fluentd-buffer-limit: the most bytes of encoded events fluentd-async buffers.
    /// fluent-logger-golang counts events instead; bytes keep the plugin's memory bounded.
    pub buffer_limit: usize,
    /// fluentd-retry-wait: the wait after the first failed attempt (whole milliseconds, as
    /// moby hands it on).
    pub retry_wait: Duration,
    /// fluentd-max-retries: consecutive failed attempts before the data is given up.
    pub max_retries: u32,
    pub sub_second: bool,
    pub request_ack: bool,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionError {
    /// An unknown key ("unknown log opt 'x' for fluentd log driver").
    #[error(transparent)]
    Opt(#[from] OptError),
    #[error("invalid fluentd-address ({address}): {reason}")]
    Address { address: String, reason: String },
    #[error("invalid fluentd-max-retries: value out of range")]
    MaxRetriesRange,
    #[error("invalid value for {key}: value (\"{value}\") must be between 100ms and 10s")]
    ReconnectRange { key: &'static str, value: String },
    #[error("invalid value for {key}: value must be a duration that is non-negative")]
    Negative { key: &'static str },
    /// Docker wraps the parse error into this message's text.
    #[error("invalid value for {key}{context}: {source}")]
    Invalid {
        key: &'static str,
        context: &'static str,
        source: GoError,
    },
    /// Docker returns these parse errors unwrapped.
    #[error("{source}")]
    Value { key: &'static str, source: GoError },
}

/// The options fluentd takes, in moby's list; their values are checked by
/// [`from_options`] in moby's order.
pub const OPTIONS: &[Opt] = &[
    opts::ENV,
    opts::ENV_REGEX,
    opts::LABELS,
    opts::LABELS_REGEX,
    opts::TAG,
    Opt::text("fluentd-address"),
    Opt::text("fluentd-async"),
    Opt::text("fluentd-async-connect"),
    Opt::text("fluentd-async-reconnect-interval"),
    Opt::text("fluentd-buffer-limit"),
    Opt::text("fluentd-max-retries"),
    Opt::text("fluentd-request-ack"),
    Opt::text("fluentd-retry-wait"),
    Opt::text("fluentd-sub-second-precision"),
    Opt::text("fluentd-write-timeout"),
    Opt::text("fluentd-read-timeout"),
];

/// Checks every option, in moby's order, and builds the configuration.
pub fn parse(opts: &[(String, String)]) -> Result<Config, OptionError> {
    let kvs: Vec<Kv> = opts
        .iter()
        .map(|(key, value)| Kv {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    from_options(&Options::parse("fluentd", OPTIONS, &kvs)?)
}

/// The configuration from options whose keys passed [`OPTIONS`]; an empty value counts as
/// absent, as in moby.
pub fn from_options(o: &Options) -> Result<Config, OptionError> {
    let get = |key: &str| o.raw(key).unwrap_or("");
    let address = get("fluentd-address");
    let (endpoint, tls) = parse_address(address).map_err(|reason| OptionError::Address {
        address: address.to_string(),
        reason,
    })?;

    let value = |key: &'static str| move |source| OptionError::Value { key, source };
    let mut buffer_limit = DEFAULT_BUFFER_LIMIT;
    let v = get("fluentd-buffer-limit");
    if !v.is_empty() {
        let n = goparse::ram_in_bytes(v).map_err(value("fluentd-buffer-limit"))?;
        buffer_limit = match usize::try_from(n) {
            Ok(0) => LIBRARY_BUFFER_LIMIT,
            Ok(n) => n,
            Err(_) => usize::MAX,
        };
    }
    let mut retry_wait = DEFAULT_RETRY_WAIT;
    let v = get("fluentd-retry-wait");
    if !v.is_empty() {
        let ns = goparse::parse_duration(v).map_err(value("fluentd-retry-wait"))?;
        // moby: int(d.Seconds() * 1000); a negative wait waits nothing.
        let ms = ns / 1_000_000;
        retry_wait = match u64::try_from(ms) {
            Ok(0) => LIBRARY_RETRY_WAIT,
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => Duration::ZERO,
        };
    }
    let mut max_retries = DEFAULT_MAX_RETRIES;
    let v = get("fluentd-max-retries");
    if !v.is_empty() {
        let n = goparse::parse_uint(v, 32).map_err(value("fluentd-max-retries"))?;
        max_retries = match u32::try_from(n) {
            Ok(0) => LIBRARY_MAX_RETRIES,
            Ok(n) if n <= DEFAULT_MAX_RETRIES => n,
            _ => return Err(OptionError::MaxRetriesRange),
        };
    }
    // fluentd-async-connect is the pre-20.10 spelling; either one turns async on.
    let mut is_async = false;
    for key in ["fluentd-async", "fluentd-async-connect"] {
        let v = get(key);
        if !v.is_empty() {
            is_async |= goparse::parse_bool(v).map_err(value(key))?;
        }
    }
    let interval = get("fluentd-async-reconnect-interval");
    if !interval.is_empty() {
        const KEY: &str = "fluentd-async-reconnect-interval";
        let d = goparse::parse_duration(interval).map_err(|source| OptionError::Invalid {
            key: KEY,
            context: "",
            source,
        })?;
        if d != 0 && !(100_000_000..=10_000_000_000).contains(&d) {
            return Err(OptionError::ReconnectRange {
                key: KEY,
                value: goparse::duration_string(d),
            });
        }
    }
    let flag = |key: &'static str| -> Result<bool, OptionError> {
        let v = get(key);
        if v.is_empty() {
            Ok(false)
        } else {
            goparse::parse_bool(v).map_err(value(key))
        }
    };
    let sub_second = flag("fluentd-sub-second-precision")?;
    let request_ack = flag("fluentd-request-ack")?;
    let timeout = |key: &'static str| -> Result<Option<Duration>, OptionError> {
        let v = get(key);
        if v.is_empty() {
            return Ok(None);
        }
        let d = goparse::parse_duration(v).map_err(|source| OptionError::Invalid {
            key,
            context: ": value must be a duration",
            source,
        })?;
        if d < 0 {
            return Err(OptionError::Negative { key });
        }
        Ok((d > 0).then(|| Duration::from_nanos(d as u64)))
    };
    let write_timeout = timeout("fluentd-write-timeout")?;
    let read_timeout = timeout("fluentd-read-timeout")?;
    Ok(Config {
        endpoint,
        tls,
        is_async,
        buffer_limit,
        retry_wait,
        max_retries,
        sub_second,
        request_ack,
        read_timeout,
        write_timeout,
    })
}

/// moby's parseAddress: `[tcp://|tls://]host[:port]` or `unix:///path`, giving the
/// `endpoints` address and whether TLS wraps it. Errors are the reason text only.
pub fn parse_address(address: &str) -> Result<(String, bool), String> {
    if address.is_empty() {
        return Ok((DEFAULT_ADDRESS.to_string(), false));
    }
    let full = if address.contains("://") {
        address.to_string()
    } else {
        format!("tcp://{address}")
    };
    let url_err = |reason: String| format!("parse \"{full}\": {reason}");
    let colon = full.find(':').unwrap_or(0);
    let scheme = &full[..colon];
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(url_err("missing protocol scheme".into()));
    }
    let scheme = scheme.to_ascii_lowercase();
    let rest = full[colon + 1..].split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        },
        None => ("", ""),
    };
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_host_port(hostport).map_err(url_err)?;
    match scheme.as_str() {
        "unix" => {
            if path.trim_start_matches('/').is_empty() {
                return Err("path is empty".into());
            }
            return Ok((format!("unix://{path}"), false));
        }
        "tcp" | "tls" => {}
        _ => return Err(format!("unsupported scheme: '{scheme}'")),
    }
    if !path.is_empty() {
        return Err("should not contain a path element".into());
    }
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    let port = if port.is_empty() {
        24224
    } else {
        goparse::parse_uint(port, 16).map_err(|e| format!("invalid port: {e}"))?
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Ok((format!("tcp://{host}:{port}"), scheme == "tls"))
}

/// url.Parse's host/port split: the port, when present, must be digits.
fn split_host_port(hostport: &str) -> Result<(&str, &str), String> {
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (h, rest),
            None => return Err("missing ']' in host".into()),
        },
        None => match hostport.find(':') {
            Some(i) => (&hostport[..i], &hostport[i..]),
            None => (hostport, ""),
        },
    };
    if port.is_empty() || port == ":" {
        return Ok((host, ""));
    }
    match port.strip_prefix(':') {
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Ok((host, p)),
        _ => Err(format!("invalid port \"{port}\" after host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(kv: &[(&str, &str)]) -> String {
        parse(&opts(kv)).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.endpoint, "tcp://127.0.0.1:24224");
        assert!(!c.tls && !c.is_async && !c.sub_second && !c.request_ack);
        assert_eq!((c.read_timeout, c.write_timeout), (None, None));
        assert_eq!(c.buffer_limit, 1024 * 1024);
        assert_eq!(c.retry_wait, Duration::from_secs(1));
        assert_eq!(c.max_retries, 2_147_483_647);
    }

    #[test]
    fn addresses_as_moby() {
        let ok = [
            ("127.0.0.1:24299", "tcp://127.0.0.1:24299", false),
            ("example.com", "tcp://example.com:24224", false),
            ("[::1]:123", "tcp://[::1]:123", false),
            ("tcp://", "tcp://127.0.0.1:24224", false),
            ("tls://example.com:65535", "tcp://example.com:65535", true),
            ("unix:///run/fluent.sock", "unix:///run/fluent.sock", false),
            ("unix:///s.sock:80", "unix:///s.sock:80", false),
        ];
        for (input, endpoint, tls) in ok {
            assert_eq!(
                parse_address(input).unwrap(),
                (endpoint.to_string(), tls),
                "{input}"
            );
        }
        let bad = [
            ("://", "parse \"://\": missing protocol scheme"),
            ("udp://", "unsupported scheme: 'udp'"),
            ("unixgram://", "unsupported scheme: 'unixgram'"),
            ("tcp+tls://", "unsupported scheme: 'tcp+tls'"),
            (
                "corrupted:c",
                "parse \"tcp://corrupted:c\": invalid port \":c\" after host",
            ),
            (
                "tcp://example.com:-1",
                "parse \"tcp://example.com:-1\": invalid port \":-1\" after host",
            ),
            (
                "tcp://example.com:65536",
                "invalid port: strconv.ParseUint: parsing \"65536\": value out of range",
            ),
            ("unix://", "path is empty"),
            ("example.com:1/p", "should not contain a path element"),
        ];
        for (input, reason) in bad {
            assert_eq!(parse_address(input).unwrap_err(), reason, "{input}");
        }
        assert_eq!(
            err(&[("fluentd-address", "udp://h:1")]),
            "invalid fluentd-address (udp://h:1): unsupported scheme: 'udp'"
        );
    }

    #[test]
    fn unknown_option() {
        assert_eq!(
            err(&[("fluentd-tag", "x")]),
            "unknown log opt 'fluentd-tag' for fluentd log driver"
        );
        assert_eq!(
            err(&[("", "x")]),
            "unknown log opt '' for fluentd log driver"
        );
    }

    #[test]
    fn flags_and_their_errors() {
        let c = parse(&opts(&[
            ("fluentd-async-connect", "true"),
            ("fluentd-sub-second-precision", "1"),
            ("fluentd-request-ack", "True"),
            ("tag", "docker.{{.Name}}"),
            ("labels", "a"),
        ]))
        .unwrap();
        assert!(c.is_async && c.sub_second && c.request_ack);
        assert!(parse(&opts(&[("fluentd-async", "true")])).unwrap().is_async);
        assert_eq!(
            err(&[("fluentd-request-ack", "yes")]),
            "strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
    }

    #[test]
    fn reconnect_interval_bounds() {
        for ok in ["100ms", "10s", "0s"] {
            assert!(
                parse(&opts(&[("fluentd-async-reconnect-interval", ok)])).is_ok(),
                "{ok}"
            );
        }
        assert_eq!(
            err(&[("fluentd-async-reconnect-interval", "99ms")]),
            "invalid value for fluentd-async-reconnect-interval: value (\"99ms\") must be between 100ms and 10s"
        );
        assert_eq!(
            err(&[("fluentd-async-reconnect-interval", "-1s")]),
            "invalid value for fluentd-async-reconnect-interval: value (\"-1s\") must be between 100ms and 10s"
        );
        assert_eq!(
            err(&[("fluentd-async-reconnect-interval", "1")]),
            "invalid value for fluentd-async-reconnect-interval: time: missing unit in duration \"1\""
        );
    }

    #[test]
    fn timeouts() {
        let c = parse(&opts(&[
            ("fluentd-read-timeout", "250ms"),
            ("fluentd-write-timeout", "0s"),
        ]))
        .unwrap();
        assert_eq!(c.read_timeout, Some(Duration::from_millis(250)));
        assert_eq!(c.write_timeout, None);
        assert_eq!(
            err(&[("fluentd-write-timeout", "1")]),
            "invalid value for fluentd-write-timeout: value must be a duration: time: missing unit in duration \"1\""
        );
        assert_eq!(
            err(&[("fluentd-read-timeout", "-1s")]),
            "invalid value for fluentd-read-timeout: value must be a duration that is non-negative"
        );
    }

    #[test]
    fn retry_and_buffer_options() {
        let c = parse(&opts(&[
            ("fluentd-buffer-limit", "2m"),
            ("fluentd-retry-wait", "1500us"),
            ("fluentd-max-retries", "10"),
        ]))
        .unwrap();
        assert_eq!(c.buffer_limit, 2 * 1024 * 1024);
        assert_eq!(c.retry_wait, Duration::from_millis(1), "whole milliseconds");
        assert_eq!(c.max_retries, 10);
        // Zero (or under 1 ms) is fluent-logger-golang's cue for its own defaults.
        let z = parse(&opts(&[
            ("fluentd-buffer-limit", "0"),
            ("fluentd-retry-wait", "900us"),
            ("fluentd-max-retries", "0"),
        ]))
        .unwrap();
        assert_eq!(
            (z.buffer_limit, z.retry_wait, z.max_retries),
            (8192, Duration::from_millis(500), 13)
        );
        let neg = parse(&opts(&[("fluentd-retry-wait", "-3s")])).unwrap();
        assert_eq!(neg.retry_wait, Duration::ZERO);
        assert_eq!(
            parse(&opts(&[("fluentd-max-retries", "2147483647")]))
                .unwrap()
                .max_retries,
            i32::MAX as u32
        );
        assert_eq!(
            err(&[("fluentd-max-retries", "2147483648")]),
            "invalid fluentd-max-retries: value out of range"
        );
        assert_eq!(
            err(&[("fluentd-buffer-limit", "lots")]),
            "invalid size: 'lots'"
        );
        assert_eq!(
            err(&[("fluentd-retry-wait", "1")]),
            "time: missing unit in duration \"1\""
        );
        assert_eq!(
            err(&[("fluentd-max-retries", "-1")]),
            "strconv.ParseUint: parsing \"-1\": invalid syntax"
        );
        assert_eq!(
            err(&[("fluentd-max-retries", "4294967295")]),
            "invalid fluentd-max-retries: value out of range"
        );
    }
}
