//! The `awslogs` log driver: container output to Amazon CloudWatch Logs, as dockerd's
//! (moby daemon/logger/awslogs) does it.
//!
//! The logic lives in plain modules behind [`api::Transport`] and [`api::Clock`]; this file
//! only binds them to the host's `http`, `secrets` and `diag` imports.

#![deny(unsafe_code)]
// The glue below is reached only through the component exports, which exist on wasm32 alone.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub mod api;
pub mod batcher;
pub mod multiline;
pub mod options;
pub mod partial;
pub mod setup;
pub mod shipper;
pub mod sigv4;

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use burrow_plugin_sdk::log::{
    Capabilities, Container, Entry, Error, Guest, GuestLogger, Kv, Logger, NoReader, PluginInfo,
    Source, diag, http, secrets,
};

use api::{Clock, HttpRequest, HttpResponse, Transport, TransportError};
use shipper::{Input, Notice, ShipError, Shipper, chain};

struct AwsLogs;

impl Guest for AwsLogs {
    type Logger = AwsLogger;
    type Reader = NoReader;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "awslogs".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "sends container output to Amazon CloudWatch Logs".into(),
            needs: Capabilities {
                log_dir: false,
                network: false,
                default_addresses: vec![],
                // awslogs-endpoint, when set, is allowed because an option names it.
                http_patterns: vec![
                    "https://logs.*.amazonaws.com".into(),
                    "https://logs.*.amazonaws.com.cn".into(),
                ],
                http: true,
                secrets: vec!["aws".into()],
            },
        }
    }

    fn validate(opts: Vec<Kv>) -> Result<(), Error> {
        options::parse(&pairs(opts))
            .map(drop)
            .map_err(|e| Error::InvalidConfig(chain(&e)))
    }

    fn can_read() -> bool {
        false
    }
}

fn pairs(opts: Vec<Kv>) -> Vec<(String, String)> {
    opts.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

fn error_text(e: &Error) -> &str {
    match e {
        Error::InvalidConfig(m)
        | Error::Unsupported(m)
        | Error::Unavailable(m)
        | Error::Denied(m)
        | Error::Internal(m) => m,
    }
}

/// The host's `http::send`.
struct HostHttp;

impl Transport for HostHttp {
    fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let req = http::Request {
            method: req.method,
            url: req.url,
            headers: req
                .headers
                .into_iter()
                .map(|(key, value)| Kv { key, value })
                .collect(),
            body: req.body,
            timeout_ms: req.timeout_ms,
        };
        match http::send(&req) {
            Ok(r) => Ok(HttpResponse {
                status: r.status,
                headers: r.headers.into_iter().map(|kv| (kv.key, kv.value)).collect(),
                body: r.body,
            }),
            Err(e) => Err(TransportError(error_text(&e).to_string())),
        }
    }
}

struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

struct AwsLogger {
    shipper: RefCell<Shipper<HostHttp, WallClock>>,
}

impl AwsLogger {
    fn report(&self) {
        for n in self.shipper.borrow_mut().take_notices() {
            match n {
                Notice::Warn(m) => diag::log(diag::Level::Warn, &m),
                Notice::Error(m) => diag::log(diag::Level::Error, &m),
            }
        }
    }
}

fn unavailable(e: &ShipError) -> Error {
    Error::Unavailable(chain(e))
}

fn input(e: Entry) -> Input {
    Input {
        source: match e.source {
            Source::Stdout => partial::Source::Stdout,
            Source::Stderr => partial::Source::Stderr,
        },
        line: e.line,
        // The last chunk of a long line is a complete line's end.
        chunk: e.partial.map(|p| (p.id, p.last)),
        time_ns: e.time_ns,
    }
}

impl GuestLogger for AwsLogger {
    fn open(c: Container, opts: Vec<Kv>) -> Result<Logger, Error> {
        let opts = options::parse(&pairs(opts)).map_err(|e| Error::InvalidConfig(chain(&e)))?;
        let secret = secrets::get("aws").map_err(|e| {
            let why = format!("cannot read the \"aws\" secret: {}", error_text(&e));
            match e {
                Error::Denied(_) => Error::Denied(why),
                Error::Unavailable(_) => Error::Unavailable(why),
                _ => Error::InvalidConfig(why),
            }
        })?;
        let who = setup::ContainerRef {
            id: &c.id,
            tag: c.tag.as_deref(),
        };
        let (client, cfg) =
            setup::resolve(opts, who, &secret).map_err(|e| Error::InvalidConfig(chain(&e)))?;
        let shipper =
            Shipper::open(client, HostHttp, WallClock, cfg).map_err(|e| unavailable(&e))?;
        Ok(Logger::new(AwsLogger {
            shipper: RefCell::new(shipper),
        }))
    }

    fn write(&self, batch: Vec<Entry>) -> Result<(), Error> {
        let inputs = batch.into_iter().map(input).collect();
        let r = self.shipper.borrow_mut().write(inputs);
        self.report();
        r.map_err(|e| unavailable(&e))
    }

    fn flush(&self) -> Result<(), Error> {
        let r = self.shipper.borrow_mut().flush();
        self.report();
        r.map_err(|e| unavailable(&e))
    }
}

impl Drop for AwsLogger {
    // The WIT has no close: dropping the logger is the last chance to send what is held.
    fn drop(&mut self) {
        let r = self.shipper.get_mut().close();
        self.report();
        if let Err(e) = r {
            diag::log(diag::Level::Error, &chain(&e));
        }
    }
}

// Native builds (unit tests) carry no component exports: their names do not link there.
#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::log::export_log_driver!(AwsLogs);

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> Kv {
        Kv {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn describes_its_needs() {
        let info = AwsLogs::describe();
        assert_eq!(info.name, "awslogs");
        assert!(info.needs.http && !info.needs.network && !info.needs.log_dir);
        assert_eq!(
            info.needs.http_patterns,
            [
                "https://logs.*.amazonaws.com",
                "https://logs.*.amazonaws.com.cn"
            ]
        );
        assert_eq!(info.needs.secrets, ["aws"]);
        assert!(!AwsLogs::can_read());
    }

    #[test]
    fn validate_uses_dockers_messages() {
        let err =
            AwsLogs::validate(vec![kv("awslogs-group", "g"), kv("max-size", "1m")]).unwrap_err();
        assert!(
            matches!(err, Error::InvalidConfig(ref m) if m == "unknown log opt 'max-size' for awslogs log driver"),
            "{err:?}"
        );
        assert!(AwsLogs::validate(vec![kv("awslogs-group", "g"), kv("tag", "{{.Name}}")]).is_ok());
        assert!(matches!(
            AwsLogs::validate(vec![]),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn entries_keep_their_chunk_identity() {
        let e = Entry {
            time_ns: 5_000_000,
            source: Source::Stderr,
            line: b"x".to_vec(),
            partial: Some(burrow_plugin_sdk::log::Partial {
                id: "p".into(),
                ordinal: 2,
                last: true,
            }),
            attrs: vec![],
        };
        let i = input(e);
        assert_eq!(i.source, partial::Source::Stderr);
        assert_eq!(i.chunk, Some(("p".to_string(), true)));
        assert_eq!(i.time_ns, 5_000_000);
    }
}
