//! The driver's log options, checked with Docker's messages (moby daemon/logger/awslogs).

use std::time::Duration;

use burrow_plugin_sdk::log::Kv;
use burrow_plugin_sdk::log::opts::{self as log_opts, Opt, OptError};

use crate::multiline;

pub const REGION: &str = "awslogs-region";
pub const ENDPOINT: &str = "awslogs-endpoint";
pub const GROUP: &str = "awslogs-group";
pub const STREAM: &str = "awslogs-stream";
pub const CREATE_GROUP: &str = "awslogs-create-group";
pub const CREATE_STREAM: &str = "awslogs-create-stream";
pub const DATETIME_FORMAT: &str = "awslogs-datetime-format";
pub const MULTILINE_PATTERN: &str = "awslogs-multiline-pattern";
pub const CREDENTIALS_ENDPOINT: &str = "awslogs-credentials-endpoint";
pub const FORCE_FLUSH_INTERVAL: &str = "awslogs-force-flush-interval-seconds";
pub const MAX_BUFFERED_EVENTS: &str = "awslogs-max-buffered-events";
pub const FORMAT: &str = "awslogs-format";
pub const TAG: &str = "tag";

/// The only value `awslogs-format` takes; sent as the `x-amzn-logs-format` header.
pub const JSON_EMF: &str = "json/emf";

#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    /// An unknown key, or a value its declaration in [`OPTIONS`] refuses.
    #[error(transparent)]
    Opt(#[from] OptError),
    #[error(
        "you cannot configure log opt '{DATETIME_FORMAT}' and '{MULTILINE_PATTERN}' at the same time"
    )]
    DatetimeAndPattern,
    #[error("unsupported log format '{0}'")]
    UnsupportedFormat(String),
    #[error(
        "you cannot configure log opt '{DATETIME_FORMAT}' or '{MULTILINE_PATTERN}' when log opt '{FORMAT}' is set to '{JSON_EMF}'"
    )]
    FormatWithMultiline,
    #[error("awslogs could not parse multiline pattern key {pattern:?}")]
    BadPattern {
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error(
        "log opt '{CREDENTIALS_ENDPOINT}' is not supported by burrow: give the credentials through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or ~/.aws/credentials instead"
    )]
    CredentialsEndpoint,
    #[error(
        "invalid value for log opt '{ENDPOINT}': {value:?} is not an http:// or https:// URL with a host"
    )]
    BadEndpoint { value: String },
}

/// A validated awslogs configuration, before the container and the credentials are known.
#[derive(Debug, Clone)]
pub struct Options {
    pub region: Option<String>,
    pub endpoint: Option<Endpoint>,
    pub group: String,
    pub stream: Option<String>,
    pub create_group: bool,
    pub create_stream: bool,
    pub multiline: Option<multiline::Pattern>,
    pub flush_interval: Duration,
    pub max_buffered_events: u32,
    pub format: Option<String>,
}

/// An endpoint URL split into what the request and the signature need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// The `Host` header: host, plus `:port` when the URL names a non-default port.
    pub authority: String,
    /// The request path, at least "/".
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Option<Endpoint> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => "80",
            "https" => "443",
            _ => return None,
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        // The query and fragment of an endpoint mean nothing to a JSON POST.
        let path = path.split(['?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = if authority.starts_with('[') {
            let close = authority.find(']')?;
            let (host, rest) = authority.split_at(close + 1);
            match rest {
                "" => (host, None),
                r => (host, Some(r.strip_prefix(':')?)),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let authority = match port {
            Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => return None,
            Some(p) if p != default_port => format!("{host}:{p}"),
            _ => host.to_string(),
        };
        Some(Endpoint {
            scheme,
            authority: authority.to_ascii_lowercase(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
        })
    }

    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }

    /// CloudWatch Logs' public endpoint for `region` (the China partition has its own
    /// domain).
    pub fn for_region(region: &str) -> Endpoint {
        let domain = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Endpoint {
            scheme: "https".into(),
            authority: format!("logs.{region}.{domain}"),
            path: "/".into(),
        }
    }
}

const POSITIVE: &str = "must specify a positive integer for log opt '{key}': {value}";

/// The options awslogs takes (only `tag` of the host-rendered ones), the checked ones first
/// in the order Docker's `ValidateLogOpt` checks them.
pub const OPTIONS: &[Opt] = &[
    Opt::text(GROUP)
        .empty_is_unset()
        .required("must specify a value for log opt '{key}'"),
    Opt::bool(CREATE_GROUP)
        .empty_is_unset()
        .message("must specify valid value for log opt '{key}': {err}"),
    Opt::bool(CREATE_STREAM)
        .empty_is_unset()
        .default("true")
        .message("must specify valid value for log opt '{key}': {err}"),
    Opt::int(FORCE_FLUSH_INTERVAL)
        .empty_is_unset()
        .default("5")
        .message(POSITIVE)
        .at_least(1, POSITIVE),
    Opt::int(MAX_BUFFERED_EVENTS)
        .empty_is_unset()
        .default("4096")
        .message(POSITIVE)
        .at_least(1, POSITIVE),
    Opt::text(REGION),
    Opt::text(ENDPOINT),
    Opt::text(STREAM),
    Opt::text(DATETIME_FORMAT),
    Opt::text(MULTILINE_PATTERN),
    Opt::text(CREDENTIALS_ENDPOINT),
    Opt::text(FORMAT),
    Opt::host(TAG),
];

/// Checks `opts` as Docker's `ValidateLogOpt` does, then goes further where Docker fails
/// only at start (the multiline pattern, the endpoint URL).
pub fn parse(opts: &[(String, String)]) -> Result<Options, OptionError> {
    let kvs: Vec<Kv> = opts
        .iter()
        .map(|(key, value)| Kv {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    from_options(&log_opts::Options::parse("awslogs", OPTIONS, &kvs)?)
}

/// The configuration from options that passed their declarations.
pub fn from_options(o: &log_opts::Options) -> Result<Options, OptionError> {
    let get = |key: &str| o.raw(key);
    let nonempty = |key: &str| get(key).filter(|v| !v.is_empty());
    let group = o.text(GROUP).unwrap_or_default().to_string();
    let create_group = o.flag(CREATE_GROUP);
    let create_stream = o.flag(CREATE_STREAM);
    let positive = |key: &str| u64::try_from(o.int(key).unwrap_or(1)).unwrap_or(1);
    let flush_interval = Duration::from_secs(positive(FORCE_FLUSH_INTERVAL));
    let max_buffered_events = u32::try_from(positive(MAX_BUFFERED_EVENTS)).unwrap_or(u32::MAX);
    let datetime = get(DATETIME_FORMAT);
    let pattern = get(MULTILINE_PATTERN);
    if datetime.is_some() && pattern.is_some() {
        return Err(OptionError::DatetimeAndPattern);
    }
    let format = nonempty(FORMAT).map(str::to_string);
    if let Some(f) = &format {
        if f != JSON_EMF {
            return Err(OptionError::UnsupportedFormat(f.clone()));
        }
        if datetime.is_some() || pattern.is_some() {
            return Err(OptionError::FormatWithMultiline);
        }
    }
    if get(CREDENTIALS_ENDPOINT).is_some() {
        return Err(OptionError::CredentialsEndpoint);
    }
    let source = match datetime.filter(|v| !v.is_empty()) {
        Some(fmt) => Some(multiline::strftime_to_regex(fmt)),
        None => pattern.filter(|v| !v.is_empty()).map(str::to_string),
    };
    let multiline = match source {
        Some(p) => Some(multiline::compile(&p).map_err(|e| OptionError::BadPattern {
            pattern: p.clone(),
            source: Box::new(e),
        })?),
        None => None,
    };
    let endpoint = match nonempty(ENDPOINT) {
        Some(url) => Some(
            Endpoint::parse(url).ok_or_else(|| OptionError::BadEndpoint {
                value: url.to_string(),
            })?,
        ),
        None => None,
    };
    Ok(Options {
        region: nonempty(REGION).map(str::to_string),
        endpoint,
        group,
        stream: nonempty(STREAM).map(str::to_string),
        create_group,
        create_stream,
        multiline,
        flush_interval,
        max_buffered_events,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        parse(&kv(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_match_docker() {
        let o = parse(&kv(&[(GROUP, "g")])).unwrap();
        assert_eq!(o.group, "g");
        assert!(!o.create_group);
        assert!(o.create_stream);
        assert_eq!(o.flush_interval, Duration::from_secs(5));
        assert_eq!(o.max_buffered_events, 4096);
        assert!(o.multiline.is_none() && o.endpoint.is_none() && o.region.is_none());
        assert!(o.format.is_none() && o.stream.is_none());
    }

    #[test]
    fn messages_match_docker() {
        assert_eq!(
            err(&[(GROUP, "g"), ("foo", "1")]),
            "unknown log opt 'foo' for awslogs log driver"
        );
        assert_eq!(err(&[]), "must specify a value for log opt 'awslogs-group'");
        assert_eq!(
            err(&[(GROUP, "")]),
            "must specify a value for log opt 'awslogs-group'"
        );
        assert_eq!(
            err(&[(GROUP, "g"), (CREATE_GROUP, "yes")]),
            "must specify valid value for log opt 'awslogs-create-group': strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        assert_eq!(
            err(&[(GROUP, "g"), (CREATE_STREAM, "nope")]),
            "must specify valid value for log opt 'awslogs-create-stream': strconv.ParseBool: parsing \"nope\": invalid syntax"
        );
        assert_eq!(
            err(&[(GROUP, "g"), (FORCE_FLUSH_INTERVAL, "0")]),
            "must specify a positive integer for log opt 'awslogs-force-flush-interval-seconds': 0"
        );
        assert_eq!(
            err(&[(GROUP, "g"), (MAX_BUFFERED_EVENTS, "-3")]),
            "must specify a positive integer for log opt 'awslogs-max-buffered-events': -3"
        );
        assert_eq!(
            err(&[
                (GROUP, "g"),
                (DATETIME_FORMAT, "%Y"),
                (MULTILINE_PATTERN, "x")
            ]),
            "you cannot configure log opt 'awslogs-datetime-format' and 'awslogs-multiline-pattern' at the same time"
        );
        assert_eq!(
            err(&[(GROUP, "g"), (FORMAT, "text")]),
            "unsupported log format 'text'"
        );
        assert_eq!(
            err(&[
                (GROUP, "g"),
                (FORMAT, "json/emf"),
                (MULTILINE_PATTERN, "^x")
            ]),
            "you cannot configure log opt 'awslogs-datetime-format' or 'awslogs-multiline-pattern' when log opt 'awslogs-format' is set to 'json/emf'"
        );
        assert!(
            err(&[(GROUP, "g"), (CREDENTIALS_ENDPOINT, "/v2/creds")])
                .contains("not supported by burrow")
        );
        assert_eq!(
            err(&[(GROUP, "g"), (MULTILINE_PATTERN, "(")]),
            "awslogs could not parse multiline pattern key \"(\""
        );
    }

    #[test]
    fn parses_values_like_go() {
        let o = parse(&kv(&[
            (GROUP, "g"),
            (CREATE_GROUP, "T"),
            (CREATE_STREAM, "0"),
            (FORCE_FLUSH_INTERVAL, "+2"),
            (MAX_BUFFERED_EVENTS, "10"),
            (FORMAT, "json/emf"),
            (STREAM, "s"),
            (REGION, "eu-west-1"),
            (TAG, "{{.Name}}"),
        ]))
        .unwrap();
        assert!(o.create_group && !o.create_stream);
        assert_eq!(o.flush_interval, Duration::from_secs(2));
        assert_eq!(o.max_buffered_events, 10);
        assert_eq!(o.format.as_deref(), Some("json/emf"));
        assert_eq!(o.stream.as_deref(), Some("s"));
        assert_eq!(o.region.as_deref(), Some("eu-west-1"));
        assert!(parse(&kv(&[(GROUP, "g"), (FORCE_FLUSH_INTERVAL, "1.5")])).is_err());
        assert!(parse(&kv(&[(GROUP, "g"), (FORCE_FLUSH_INTERVAL, "++1")])).is_err());
    }

    #[test]
    fn endpoint_urls() {
        let e = Endpoint::parse("http://127.0.0.1:5001").unwrap();
        assert_eq!(
            (e.scheme.as_str(), e.authority.as_str(), e.path.as_str()),
            ("http", "127.0.0.1:5001", "/")
        );
        assert_eq!(e.url(), "http://127.0.0.1:5001/");
        let e = Endpoint::parse("HTTPS://Logs.EU-West-1.amazonaws.com:443/").unwrap();
        assert_eq!(e.url(), "https://logs.eu-west-1.amazonaws.com/");
        assert_eq!(
            Endpoint::parse("http://[::1]:8080/x").unwrap().authority,
            "[::1]:8080"
        );
        assert_eq!(Endpoint::parse("http://[::1]").unwrap().authority, "[::1]");
        for bad in [
            "logs.example.com",
            "ftp://h",
            "http://",
            "http://h:x",
            "http://u@h",
        ] {
            assert!(Endpoint::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            err(&[(GROUP, "g"), (ENDPOINT, "ftp://x")]),
            "invalid value for log opt 'awslogs-endpoint': \"ftp://x\" is not an http:// or https:// URL with a host"
        );
        assert_eq!(
            Endpoint::for_region("us-east-1").url(),
            "https://logs.us-east-1.amazonaws.com/"
        );
        assert_eq!(
            Endpoint::for_region("cn-north-1").url(),
            "https://logs.cn-north-1.amazonaws.com.cn/"
        );
    }

    #[test]
    fn datetime_format_becomes_the_multiline_pattern() {
        let o = parse(&kv(&[(GROUP, "g"), (DATETIME_FORMAT, "%Y-%m-%d")])).unwrap();
        let re = o.multiline.unwrap();
        assert!(re.is_match(b"2024-01-01 start"));
        assert!(!re.is_match(b"  continuation"));
        // \d is ASCII-only, as in Go.
        assert!(!re.is_match("٢٠٢٤-01-01".as_bytes()));
    }
}
