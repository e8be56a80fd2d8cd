//! The `awslogs` log driver: container output to Amazon CloudWatch Logs, as dockerd's
//! (moby daemon/logger/awslogs) does it.
//!
//! The logic lives in plain modules behind [`api::Transport`] and [`api::Clock`]; this file
//! only binds them to the SDK's driver trait and the host's `http`, `secrets` and `diag`.

#![deny(unsafe_code)]

pub mod api;
pub mod batcher;
pub mod multiline;
pub mod options;
pub mod partial;
pub mod setup;
pub mod shipper;
pub mod sigv4;

use std::time::{SystemTime, UNIX_EPOCH};

use burrow_plugin_sdk::log::driver::{LogDriver, Needs, Spec};
use burrow_plugin_sdk::log::{Container, Entry, Error, Kv, Source, host, http, opts};

use api::{Clock, HttpRequest, HttpResponse, Transport, TransportError};
use shipper::{Input, Notice, ShipError, Shipper, chain};

/// The driver: one log stream per container.
pub struct AwsLogs(Shipper<HostHttp, WallClock>);

impl LogDriver for AwsLogs {
    const SPEC: Spec = Spec {
        name: "awslogs",
        description: "sends container output to Amazon CloudWatch Logs",
        // awslogs-endpoint, when set, is allowed because an option names it.
        needs: Needs::http(&[
            "https://logs.*.amazonaws.com",
            "https://logs.*.amazonaws.com.cn",
        ])
        .with_secrets(&["aws"]),
        options: options::OPTIONS,
    };

    type Config = options::Options;

    fn config(opts: &opts::Options) -> Result<options::Options, Error> {
        options::from_options(opts).map_err(|e| Error::InvalidConfig(chain(&e)))
    }

    fn open(c: &Container, opts: options::Options) -> Result<Self, Error> {
        let secret = host::secret("aws").map_err(|e| {
            let why = format!("cannot read the \"aws\" secret: {}", e.message());
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
        Ok(AwsLogs(shipper))
    }

    fn write(&mut self, batch: Vec<Entry>) -> Result<(), Error> {
        let inputs = batch.into_iter().map(input).collect();
        let r = self.0.write(inputs);
        self.report();
        r.map_err(|e| unavailable(&e))
    }

    fn flush(&mut self) -> Result<(), Error> {
        let r = self.0.flush();
        self.report();
        r.map_err(|e| unavailable(&e))
    }
}

impl AwsLogs {
    fn report(&mut self) {
        for n in self.0.take_notices() {
            match n {
                Notice::Warn(m) => host::warn(&m),
                Notice::Error(m) => host::error(&m),
            }
        }
    }
}

impl Drop for AwsLogs {
    // The WIT has no close: dropping the logger is the last chance to send what is held.
    fn drop(&mut self) {
        let r = self.0.close();
        self.report();
        if let Err(e) = r {
            host::error(&chain(&e));
        }
    }
}

/// The host's `http::send`.
pub struct HostHttp;

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
        let r = host::http_send(&req)?;
        Ok(HttpResponse {
            status: r.status,
            headers: r.headers.into_iter().map(|kv| (kv.key, kv.value)).collect(),
            body: r.body,
        })
    }
}

pub struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
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

burrow_plugin_sdk::log_driver!(AwsLogs);

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::Guest;

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

    #[test]
    fn lines_reach_cloudwatch_through_the_host() {
        use burrow_plugin_sdk::log::http::Response;
        use burrow_plugin_sdk::testing::{self, FakeHost};
        let host = FakeHost::new();
        let opts = [("awslogs-group", "g"), ("awslogs-region", "eu-west-1")];
        let e = host.open::<AwsLogs>(&opts).err().unwrap();
        assert!(
            matches!(&e, Error::Denied(m) if m == "cannot read the \"aws\" secret: secret \"aws\" was not granted"),
            "{e:?}"
        );
        host.set_secret(
            "aws",
            br#"{"access_key_id":"AKIDEXAMPLE","secret_access_key":"s"}"#,
        );
        host.on_http(|_| {
            Ok(Response {
                status: 200,
                headers: vec![],
                body: b"{}".to_vec(),
            })
        });
        let mut d: AwsLogs = host.open(&opts).unwrap();
        d.write(testing::lines(&["hello"])).unwrap();
        d.flush().unwrap();
        drop(d);
        let reqs = host.requests();
        let targets: Vec<&str> = reqs
            .iter()
            .flat_map(|r| &r.headers)
            .filter(|h| h.key == "x-amz-target")
            .map(|h| h.value.as_str())
            .collect();
        assert_eq!(
            targets,
            [
                "Logs_20140328.CreateLogStream",
                "Logs_20140328.PutLogEvents"
            ]
        );
        assert!(
            reqs.iter()
                .all(|r| r.url == "https://logs.eu-west-1.amazonaws.com/")
        );
        let put = String::from_utf8_lossy(&reqs[1].body).into_owned();
        assert!(
            put.contains(r#""logStreamName":"e41187040f57d343ff63cae3aa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b""#)
                && put.contains(r#""message":"hello""#),
            "{put}"
        );
    }
}
