//! AWS Signature Version 4 for requests signed in the `Authorization` header.
//!
//! Only what a JSON-over-POST service needs plus enough of the canonical form (query
//! sorting, header folding) to check against AWS's published test suite.

use burrow_plugin_sdk::time::DateTime;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What `secrets::get("aws")` yields, minus the region.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    // The secret and the token never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// A request about to be signed: `headers` must already hold `host` and every other header
/// that is to be signed; `sign` adds `x-amz-date`, `x-amz-security-token` (with a session
/// token) and `authorization`.
#[derive(Debug, Clone)]
pub struct Signable<'a> {
    pub method: &'a str,
    /// The path as sent, starting with '/'.
    pub path: &'a str,
    /// The raw query string without '?', possibly empty.
    pub query: &'a str,
    pub headers: Vec<(String, String)>,
    pub payload: &'a [u8],
}

/// Signs `req` for `service` in `region` at `unix_secs` and returns its headers with the
/// signing headers added.
pub fn sign(
    mut req: Signable<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    unix_secs: u64,
) -> Vec<(String, String)> {
    let amz_date = amz_date(unix_secs);
    let date = &amz_date[..8];
    req.headers.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(token) = &creds.session_token {
        req.headers
            .push(("x-amz-security-token".into(), token.clone()));
    }
    let (canonical, signed_headers) = canonical_request(&req);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&creds.secret_access_key, date, region, service);
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    req.headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    req.headers
}

/// The canonical request and the `SignedHeaders` list.
fn canonical_request(req: &Signable<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in &req.headers {
        let name = name.to_ascii_lowercase();
        let value = collapse_spaces(value);
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let mut out = String::new();
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_path(req.path));
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    for (n, v) in &headers {
        out.push_str(n);
        out.push(':');
        out.push_str(v);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed);
    out.push('\n');
    out.push_str(&hex::encode(Sha256::digest(req.payload)));
    (out, signed)
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (uri_encode(k), uri_encode(v)),
            None => (uri_encode(p), String::new()),
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, as SigV4 wants.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time.
pub fn amz_date(unix_secs: u64) -> String {
    let t = DateTime::from_unix_secs(i64::try_from(unix_secs).unwrap_or(i64::MAX), 0, 0);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The fixed inputs of AWS's sig-v4 test suite (aws-sig-v4-test-suite).
    const SUITE_TIME: u64 = 1_440_938_160; // 2015-08-30T12:36:00Z
    const SCOPE: &str =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

    fn suite_creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(Into::into),
        }
    }

    fn suite(
        method: &str,
        query: &str,
        extra: &[(&str, &str)],
        body: &[u8],
        token: Option<&str>,
    ) -> String {
        let mut headers = vec![("Host".to_string(), "example.amazonaws.com".to_string())];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let req = Signable {
            method,
            path: "/",
            query,
            headers,
            payload: body,
        };
        let out = sign(req, &suite_creds(token), "us-east-1", "service", SUITE_TIME);
        let auth = out.iter().find(|(k, _)| k == "authorization").unwrap();
        auth.1.clone()
    }

    #[test]
    fn amz_date_formats_utc() {
        assert_eq!(amz_date(SUITE_TIME), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(amz_date(1_735_689_599), "20241231T235959Z");
    }

    #[test]
    fn get_vanilla() {
        assert_eq!(
            suite("GET", "", &[], b"", None),
            format!(
                "{SCOPE}, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        assert_eq!(
            suite("GET", "Param2=value2&Param1=value1", &[], b"", None),
            format!(
                "{SCOPE}, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
    }

    #[test]
    fn post_vanilla() {
        assert_eq!(
            suite("POST", "", &[], b"", None),
            format!(
                "{SCOPE}, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        assert_eq!(
            suite(
                "POST",
                "",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"Param1=value1",
                None
            ),
            format!(
                "{SCOPE}, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
    }

    #[test]
    fn get_vanilla_with_session_token() {
        assert_eq!(
            suite(
                "GET",
                "",
                &[],
                b"",
                Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267")
            ),
            format!(
                "{SCOPE}, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
            )
        );
    }

    #[test]
    fn a_different_secret_changes_the_signature() {
        let mut creds = suite_creds(None);
        creds.secret_access_key.push('x');
        let req = Signable {
            method: "GET",
            path: "/",
            query: "",
            headers: vec![("host".into(), "example.amazonaws.com".into())],
            payload: b"",
        };
        let out = sign(req, &creds, "us-east-1", "service", SUITE_TIME);
        let auth = &out.last().unwrap().1;
        assert!(
            !auth.ends_with("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", suite_creds(Some("tok")));
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(
            !shown.contains("EXAMPLEKEY") && !shown.contains("tok\""),
            "{shown}"
        );
    }
}
