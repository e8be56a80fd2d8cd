//! CloudWatch Logs' JSON 1.1 API: signed requests out, results and errors back.

use serde::Serialize;
use serde_json::Value;

use crate::batcher::Event;
use crate::options::Endpoint;
use crate::sigv4::{self, Credentials};

/// SigV4's name for CloudWatch Logs.
const SERVICE: &str = "logs";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const USER_AGENT: &str = concat!("burrow-awslogs/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request got no answer, in the transport's words.
pub use burrow_plugin_sdk::log::TransportError;

/// Sends one HTTP request: the host's `http::send` in the plugin, ureq in tests.
pub trait Transport {
    fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    CreateLogGroup,
    CreateLogStream,
    PutLogEvents,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::CreateLogGroup => "CreateLogGroup",
            Op::CreateLogStream => "CreateLogStream",
            Op::PutLogEvents => "PutLogEvents",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub const RESOURCE_NOT_FOUND: &str = "ResourceNotFoundException";
pub const ALREADY_EXISTS: &str = "ResourceAlreadyExistsException";
const DATA_ALREADY_ACCEPTED: &str = "DataAlreadyAcceptedException";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Shaped like the AWS SDK's `Code: Message`, which Docker's messages show.
    #[error("{code}: {message}")]
    Service {
        op: Op,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{op} request to {url} failed")]
    Transport {
        op: Op,
        url: String,
        #[source]
        source: TransportError,
    },
    #[error("{op} answered HTTP {status} with a body that is not JSON")]
    BadBody {
        op: Op,
        status: u16,
        #[source]
        source: serde_json::Error,
    },
}

impl ApiError {
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when sending the same request later may succeed: no answer, a server error,
    /// throttling, or credentials the server refused (they may be renewed). A request the
    /// service rejects as invalid will be rejected again.
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Transport { .. } | ApiError::BadBody { .. } => true,
            ApiError::Service { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        code.as_str(),
                        "ThrottlingException"
                            | "ServiceUnavailableException"
                            | "RequestTimeout"
                            | "RequestExpired"
                            | "ExpiredTokenException"
                            | "UnrecognizedClientException"
                            | "InvalidSignatureException"
                            | "SignatureDoesNotMatch"
                            | "IncompleteSignature"
                            | "InvalidClientTokenId"
                            | "AccessDeniedException"
                            | "AccessDenied"
                    )
            }
        }
    }
}

/// Events CloudWatch accepted the request for but did not store (too old or too new).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub too_new_start: Option<u64>,
    pub too_old_end: Option<u64>,
    pub expired_end: Option<u64>,
}

impl Rejected {
    pub fn any(&self) -> bool {
        self.too_new_start.is_some() || self.too_old_end.is_some() || self.expired_end.is_some()
    }
}

/// Signs and sends CloudWatch Logs calls for one log stream.
#[derive(Debug, Clone)]
pub struct Client {
    pub endpoint: Endpoint,
    pub region: String,
    pub creds: Credentials,
    /// `awslogs-format`, sent as `x-amzn-logs-format`.
    pub format: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupBody<'a> {
    log_group_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StreamBody<'a> {
    log_group_name: &'a str,
    log_stream_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PutBody<'a> {
    log_group_name: &'a str,
    log_stream_name: &'a str,
    log_events: &'a [Event],
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("InputLogEvent", 2)?;
        st.serialize_field("timestamp", &self.timestamp_ms)?;
        st.serialize_field("message", &self.message)?;
        st.end()
    }
}

impl Client {
    /// The signed HTTP request for `op` with a JSON `body`.
    pub fn request(&self, op: Op, body: Vec<u8>, now_ms: i64, timeout_ms: u32) -> HttpRequest {
        let mut headers = vec![
            ("content-type".to_string(), CONTENT_TYPE.to_string()),
            ("host".to_string(), self.endpoint.authority.clone()),
            (
                "x-amz-target".to_string(),
                format!("Logs_20140328.{}", op.name()),
            ),
        ];
        if let Some(f) = &self.format {
            headers.push(("x-amzn-logs-format".to_string(), f.clone()));
        }
        let signable = sigv4::Signable {
            method: "POST",
            path: &self.endpoint.path,
            query: "",
            headers,
            payload: &body,
        };
        let secs = u64::try_from(now_ms.max(0) / 1000).unwrap_or(0);
        let mut headers = sigv4::sign(signable, &self.creds, &self.region, SERVICE, secs);
        // The transport derives Host from the URL, which names the same authority.
        headers.retain(|(k, _)| k != "host");
        headers.push(("user-agent".to_string(), USER_AGENT.to_string()));
        HttpRequest {
            method: "POST".into(),
            url: self.endpoint.url(),
            headers,
            body,
            timeout_ms,
        }
    }

    fn call(
        &self,
        t: &mut dyn Transport,
        op: Op,
        body: Vec<u8>,
        now_ms: i64,
        timeout_ms: u32,
    ) -> Result<Value, ApiError> {
        let req = self.request(op, body, now_ms, timeout_ms);
        let url = req.url.clone();
        let resp = t
            .send(req)
            .map_err(|source| ApiError::Transport { op, url, source })?;
        parse_response(op, &resp)
    }

    pub fn create_log_group(
        &self,
        t: &mut dyn Transport,
        group: &str,
        now_ms: i64,
        timeout_ms: u32,
    ) -> Result<(), ApiError> {
        let body = to_json(&GroupBody {
            log_group_name: group,
        });
        self.call(t, Op::CreateLogGroup, body, now_ms, timeout_ms)
            .map(drop)
    }

    pub fn create_log_stream(
        &self,
        t: &mut dyn Transport,
        group: &str,
        stream: &str,
        now_ms: i64,
        timeout_ms: u32,
    ) -> Result<(), ApiError> {
        let body = to_json(&StreamBody {
            log_group_name: group,
            log_stream_name: stream,
        });
        self.call(t, Op::CreateLogStream, body, now_ms, timeout_ms)
            .map(drop)
    }

    /// Sends `events` (sorted, within the batch limits). Sequence tokens are not sent:
    /// CloudWatch ignores them since 2023.
    pub fn put_log_events(
        &self,
        t: &mut dyn Transport,
        group: &str,
        stream: &str,
        events: &[Event],
        now_ms: i64,
        timeout_ms: u32,
    ) -> Result<Rejected, ApiError> {
        let body = to_json(&PutBody {
            log_group_name: group,
            log_stream_name: stream,
            log_events: events,
        });
        match self.call(t, Op::PutLogEvents, body, now_ms, timeout_ms) {
            Ok(v) => Ok(rejected(&v)),
            Err(e) if e.code() == Some(DATA_ALREADY_ACCEPTED) => Ok(Rejected::default()),
            Err(e) => Err(e),
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("strings and integers always serialize")
}

fn rejected(v: &Value) -> Rejected {
    let info = &v["rejectedLogEventsInfo"];
    Rejected {
        too_new_start: info["tooNewLogEventStartIndex"].as_u64(),
        too_old_end: info["tooOldLogEventEndIndex"].as_u64(),
        expired_end: info["expiredLogEventEndIndex"].as_u64(),
    }
}

/// The JSON result of a 2xx answer, or the service's error.
pub fn parse_response(op: Op, resp: &HttpResponse) -> Result<Value, ApiError> {
    let status = resp.status;
    if (200..300).contains(&status) {
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&resp.body).map_err(|source| ApiError::BadBody {
            op,
            status,
            source,
        });
    }
    let json: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let header_type = resp
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amzn-errortype"))
        .map(|(_, v)| v.clone());
    let text = String::from_utf8_lossy(&resp.body);
    let code = json
        .as_ref()
        .and_then(|j| {
            j["__type"]
                .as_str()
                .or(j["code"].as_str())
                .map(str::to_string)
        })
        .or(header_type)
        .or_else(|| xml_field(&text, "Code"))
        .map(|c| short_code(&c))
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = json
        .as_ref()
        .and_then(|j| {
            j["message"]
                .as_str()
                .or(j["Message"].as_str())
                .map(str::to_string)
        })
        .or_else(|| xml_field(&text, "Message"))
        .unwrap_or_else(|| {
            text.chars()
                .take(200)
                .collect::<String>()
                .trim()
                .to_string()
        });
    Err(ApiError::Service {
        op,
        status,
        code,
        message,
    })
}

/// `com.amazonaws.logs#ResourceNotFoundException` and
/// `ResourceNotFoundException:http://internal.amazon.com/…` both name
/// `ResourceNotFoundException`.
fn short_code(raw: &str) -> String {
    let after_hash = raw.rsplit('#').next().unwrap_or(raw);
    after_hash
        .split(':')
        .next()
        .unwrap_or(after_hash)
        .trim()
        .to_string()
}

/// The text of the first `<name>…</name>`, for services that answer errors in XML.
fn xml_field(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))?;
    Some(text[start..start + end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(format: Option<&str>, token: Option<&str>) -> Client {
        Client {
            endpoint: Endpoint::parse("http://127.0.0.1:5001").unwrap(),
            region: "us-east-1".into(),
            creds: Credentials {
                access_key_id: "AKID".into(),
                secret_access_key: "secret".into(),
                session_token: token.map(Into::into),
            },
            format: format.map(Into::into),
        }
    }

    fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
        req.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn builds_a_signed_json_request() {
        let req = client(Some("json/emf"), Some("TOKEN")).request(
            Op::PutLogEvents,
            b"{}".to_vec(),
            1_440_938_160_000,
            2_000,
        );
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "http://127.0.0.1:5001/");
        assert_eq!(req.timeout_ms, 2_000);
        assert_eq!(
            header(&req, "content-type"),
            Some("application/x-amz-json-1.1")
        );
        assert_eq!(
            header(&req, "x-amz-target"),
            Some("Logs_20140328.PutLogEvents")
        );
        assert_eq!(header(&req, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(header(&req, "x-amz-security-token"), Some("TOKEN"));
        assert_eq!(header(&req, "x-amzn-logs-format"), Some("json/emf"));
        assert_eq!(header(&req, "host"), None);
        let auth = header(&req, "authorization").unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/logs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target;x-amzn-logs-format, Signature="), "{auth}");
        let plain = client(None, None).request(Op::CreateLogGroup, vec![], 0, 1);
        assert_eq!(header(&plain, "x-amz-security-token"), None);
        assert_eq!(header(&plain, "x-amzn-logs-format"), None);
    }

    #[test]
    fn put_body_carries_sorted_events() {
        struct Capture(Vec<HttpRequest>);
        impl Transport for Capture {
            fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
                self.0.push(req);
                Ok(resp(200, r#"{"nextSequenceToken":"1"}"#))
            }
        }
        let mut t = Capture(vec![]);
        let events = [Event {
            timestamp_ms: 5,
            message: "hé \"q\"".into(),
        }];
        let r = client(None, None)
            .put_log_events(&mut t, "g", "s", &events, 0, 1)
            .unwrap();
        assert!(!r.any());
        let body: Value = serde_json::from_slice(&t.0[0].body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"logGroupName":"g","logStreamName":"s","logEvents":[{"timestamp":5,"message":"hé \"q\""}]})
        );
    }

    #[test]
    fn parses_json_errors() {
        let e = parse_response(
            Op::CreateLogStream,
            &resp(400, r#"{"__type":"ResourceNotFoundException","message":"The specified log group does not exist."}"#),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ResourceNotFoundException: The specified log group does not exist."
        );
        assert_eq!(e.code(), Some(RESOURCE_NOT_FOUND));
        assert!(!e.retryable());
        let e = parse_response(
            Op::PutLogEvents,
            &resp(
                400,
                r#"{"__type":"com.amazonaws.logs#ThrottlingException","Message":"slow down"}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "ThrottlingException: slow down");
        assert!(e.retryable());
    }

    #[test]
    fn parses_xml_and_bare_errors() {
        let e = parse_response(
            Op::PutLogEvents,
            &resp(403, "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error></ErrorResponse>"),
        )
        .unwrap_err();
        assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
        assert!(
            e.to_string()
                .starts_with("SignatureDoesNotMatch: The request signature")
        );
        assert!(e.retryable());
        let e = parse_response(Op::PutLogEvents, &resp(502, "bad gateway")).unwrap_err();
        assert_eq!(e.to_string(), "HTTP502: bad gateway");
        assert!(e.retryable());
        let mut r = resp(400, "");
        r.headers.push((
            "X-Amzn-ErrorType".into(),
            "InvalidParameterException:http://internal".into(),
        ));
        assert_eq!(
            parse_response(Op::PutLogEvents, &r).unwrap_err().code(),
            Some("InvalidParameterException")
        );
    }

    #[test]
    fn reports_rejected_events_and_accepts_duplicates() {
        let v = parse_response(
            Op::PutLogEvents,
            &resp(
                200,
                r#"{"rejectedLogEventsInfo":{"tooOldLogEventEndIndex":2}}"#,
            ),
        )
        .unwrap();
        let r = rejected(&v);
        assert!(r.any());
        assert_eq!(r.too_old_end, Some(2));
        assert_eq!(
            parse_response(Op::CreateLogGroup, &resp(200, "")).unwrap(),
            Value::Null
        );
        assert!(parse_response(Op::CreateLogGroup, &resp(200, "<html>")).is_err());
    }
}
