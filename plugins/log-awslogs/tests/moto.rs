//! The driver's logic against moto with SigV4 checking on, through a native ureq transport.
//!
//!     tests/servers/moto.sh start /tmp/moto 5301
//!     set -a; . /tmp/moto/credentials.env; set +a
//!     BURROW_TEST_MOTO=127.0.0.1:5301 cargo test -p log-awslogs --test moto -- --ignored
//!     tests/servers/moto.sh stop /tmp/moto
//!
//! Ignored by default: it needs the server. Run with `--ignored` and no BURROW_TEST_MOTO, it
//! fails rather than passing without having tested anything.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log_awslogs::api::{Client, Clock, HttpRequest, HttpResponse, Transport, TransportError};
use log_awslogs::options::Endpoint;
use log_awslogs::partial::Source;
use log_awslogs::shipper::{Input, Shipper, StreamConfig, chain};
use log_awslogs::sigv4::{self, Credentials};
use serde_json::Value;

const IGNORE: &str = "needs moto: tests/servers/moto.sh start DIR PORT, then BURROW_TEST_MOTO=127.0.0.1:PORT and AWS_* from DIR/credentials.env";

struct Ureq(ureq::Agent);

impl Transport for Ureq {
    fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut b = self
            .0
            .post(&req.url)
            .config()
            .timeout_global(Some(Duration::from_millis(u64::from(req.timeout_ms))))
            .build();
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        let mut resp = b
            .send(&req.body[..])
            .map_err(|e| TransportError::new(e.to_string()))?;
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        Ok(HttpResponse {
            status: resp.status().as_u16(),
            headers,
            body: resp
                .body_mut()
                .read_to_vec()
                .map_err(|e| TransportError::new(e.to_string()))?,
        })
    }
}

struct Wall;

impl Clock for Wall {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }
}

struct Moto {
    endpoint: Endpoint,
    creds: Credentials,
    region: String,
}

fn moto() -> Moto {
    let addr = std::env::var("BURROW_TEST_MOTO")
        .unwrap_or_else(|_| panic!("BURROW_TEST_MOTO is not set: {IGNORE}"));
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: {IGNORE}"));
    Moto {
        endpoint: Endpoint::parse(&format!("http://{addr}"))
            .expect("BURROW_TEST_MOTO is HOST:PORT"),
        creds: Credentials {
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: None,
        },
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
    }
}

fn transport() -> Ureq {
    Ureq(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
    )
}

fn client(m: &Moto) -> Client {
    Client {
        endpoint: m.endpoint.clone(),
        region: m.region.clone(),
        creds: m.creds.clone(),
        format: None,
    }
}

fn unique(prefix: &str) -> String {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{ns}")
}

fn cfg(group: &str, stream: &str, create_group: bool) -> StreamConfig {
    StreamConfig {
        group: group.into(),
        stream: stream.into(),
        create_group,
        create_stream: true,
        multiline: None,
        flush_interval: Duration::from_secs(5),
    }
}

fn input(text: &[u8], chunk: Option<(&str, bool)>, ms: i64) -> Input {
    Input {
        source: Source::Stdout,
        line: text.to_vec(),
        chunk: chunk.map(|(id, last)| (id.to_string(), last)),
        time_ns: ms as u64 * 1_000_000,
    }
}

/// GetLogEvents, signed by hand: the driver itself never reads.
fn events(m: &Moto, group: &str, stream: &str) -> Vec<(i64, String)> {
    let body =
        serde_json::json!({"logGroupName": group, "logStreamName": stream, "startFromHead": true})
            .to_string()
            .into_bytes();
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("host".to_string(), m.endpoint.authority.clone()),
        (
            "x-amz-target".to_string(),
            "Logs_20140328.GetLogEvents".to_string(),
        ),
    ];
    let signable = sigv4::Signable {
        method: "POST",
        path: "/",
        query: "",
        headers,
        payload: &body,
    };
    let secs = (Wall.now_ms() / 1000) as u64;
    let mut headers = sigv4::sign(signable, &m.creds, &m.region, "logs", secs);
    headers.retain(|(k, _)| k != "host");
    let resp = transport()
        .send(HttpRequest {
            method: "POST".into(),
            url: m.endpoint.url(),
            headers,
            body,
            timeout_ms: 5_000,
        })
        .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["timestamp"].as_i64().unwrap(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs moto (tests/servers/moto.sh); run with --ignored and BURROW_TEST_MOTO"]
fn creates_group_and_stream_sends_events_and_reads_them_back() {
    let m = moto();
    let group = unique("burrow-it");
    let stream = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let mut s = Shipper::open(client(&m), transport(), Wall, cfg(&group, stream, true))
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    // A second open of the same stream is accepted (ResourceAlreadyExistsException).
    Shipper::open(client(&m), transport(), Wall, cfg(&group, stream, false))
        .unwrap_or_else(|e| panic!("{}", chain(&e)));

    let now = Wall.now_ms();
    let long = vec![b'C'; 300_000];
    let mut batch = vec![input(b"second", None, now + 1), input(b"first", None, now)];
    let chunks: Vec<&[u8]> = long.chunks(16_384).collect();
    for (i, c) in chunks.iter().enumerate() {
        batch.push(input(c, Some(("p1", i + 1 == chunks.len())), now + 2));
    }
    batch.push(input(
        "héllo \u{1F600} \"quoted\"".as_bytes(),
        None,
        now + 3,
    ));
    batch.push(input(b"bad \xff byte", None, now + 4));
    s.write(batch).unwrap_or_else(|e| panic!("{}", chain(&e)));
    s.close().unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(s.held(), 0);

    let got = events(&m, &group, stream);
    let summary: Vec<(i64, usize)> = got.iter().map(|(t, msg)| (t - now, msg.len())).collect();
    assert_eq!(
        summary,
        vec![(0, 5), (1, 6), (2, 262_118), (2, 37_882), (3, 20), (4, 12)],
        "{:?}",
        got.iter()
            .map(|(t, msg)| (t - now, msg.chars().take(20).collect::<String>()))
            .collect::<Vec<_>>()
    );
    assert_eq!(got[0].1, "first");
    assert_eq!(got[4].1, "héllo \u{1F600} \"quoted\"");
    assert_eq!(got[5].1, "bad \u{FFFD} byte");
}

#[test]
#[ignore = "needs moto (tests/servers/moto.sh); run with --ignored and BURROW_TEST_MOTO"]
fn a_missing_group_fails_with_dockers_message() {
    let m = moto();
    let err = Shipper::open(
        client(&m),
        transport(),
        Wall,
        cfg(&unique("nogroup"), "s", false),
    )
    .err()
    .expect("the group does not exist");
    assert_eq!(
        chain(&err),
        "failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist."
    );
}

#[test]
#[ignore = "needs moto (tests/servers/moto.sh); run with --ignored and BURROW_TEST_MOTO"]
fn a_wrong_secret_gets_signature_does_not_match() {
    let m = moto();
    let mut bad = client(&m);
    bad.creds.secret_access_key = "wrong-secret".into();
    let err = Shipper::open(
        bad.clone(),
        transport(),
        Wall,
        cfg(&unique("badsig"), "s", true),
    )
    .err()
    .expect("moto checks signatures");
    let text = chain(&err);
    assert!(
        text.starts_with("failed to create Cloudwatch log stream: SignatureDoesNotMatch: The request signature we calculated does not match"),
        "{text}"
    );
    let put = bad
        .put_log_events(&mut transport(), "g", "s", &[], Wall.now_ms(), 5_000)
        .unwrap_err();
    assert_eq!(put.code(), Some("SignatureDoesNotMatch"));
    assert!(matches!(
        put,
        log_awslogs::api::ApiError::Service { status: 403, .. }
    ));
    assert!(
        put.retryable(),
        "refused credentials may be renewed: the events are kept"
    );
}
