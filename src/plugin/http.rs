//! `http.send`: outgoing HTTP(S) for a plugin, only to URLs its policy allows (policy.rs).
//! No redirects (a redirect could leave the allowed origin), a bounded response, and
//! a resolver that refuses names resolving to link-local or metadata addresses.

use std::time::Duration;

use ureq::Agent as UreqAgent;
use ureq::http::{HeaderName, HeaderValue, Method, Request as HttpRequest, Uri};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::bindings::burrow::plugin::http::{Error, Host, Request, Response};
use super::bindings::burrow::plugin::types::Kv;
use super::policy::is_link_local;
use super::state::HostState;

/// Largest response body the host reads for a plugin.
const MAX_BODY: u64 = 8 << 20;

pub(crate) type Agent = UreqAgent;

fn agent() -> Agent {
    let config = UreqAgent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("burrow/", env!("CARGO_PKG_VERSION")))
        .build();
    UreqAgent::with_parts(
        config,
        DefaultConnector::default(),
        NoLinkLocal(DefaultResolver::default()),
    )
}

impl Host for HostState {
    fn send(&mut self, req: Request) -> Result<Response, Error> {
        self.policy.check_url(&req.url).map_err(Error::Denied)?;
        let timeout = self.clamp(req.timeout_ms);
        let agent = self.http_agent.get_or_insert_with(agent);
        send(agent, req, timeout)
    }
}

fn send(agent: &Agent, req: Request, timeout: Duration) -> Result<Response, Error> {
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::InvalidConfig(format!("{what}: {e}"));
    let method = Method::from_bytes(req.method.as_bytes()).map_err(|e| bad("method", &e))?;
    let uri: Uri = req.url.parse().map_err(|e| bad("url", &e))?;
    let mut builder = HttpRequest::builder().method(method).uri(uri);
    for Kv { key, value } in &req.headers {
        let name = HeaderName::from_bytes(key.as_bytes()).map_err(|e| bad(key, &e))?;
        let value = HeaderValue::from_str(value).map_err(|e| bad(key, &e))?;
        builder = builder.header(name, value);
    }
    let request = builder.body(req.body).map_err(|e| bad("request", &e))?;
    let request = agent
        .configure_request(request)
        .timeout_global(Some(timeout))
        .build();
    let mut resp = agent.run(request).map_err(|e| match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            Error::Denied(io.to_string())
        }
        e => Error::Unavailable(format!("{}: {e}", req.url)),
    })?;
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| Kv {
            key: k.as_str().to_string(),
            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
        .collect();
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| Error::Unavailable(format!("{}: reading the response: {e}", req.url)))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// DNS that refuses names resolving to link-local addresses (169.254.169.254 and friends),
/// so that a name under an allowed pattern cannot reach the cloud metadata service.
#[derive(Debug)]
struct NoLinkLocal(DefaultResolver);

impl Resolver for NoLinkLocal {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.0.resolve(uri, config, timeout)?;
        if let Some(a) = addrs.iter().find(|a| is_link_local(&a.ip())) {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{uri}: resolves to the link-local address {}, which plugins never reach",
                    a.ip()
                ),
            )));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::policy::Policy;
    use crate::plugin::{Capabilities, Grants};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn state(opts: &[(&str, &str)]) -> HostState {
        let needs = Capabilities {
            log_dir: false,
            network: false,
            default_addresses: vec![],
            http_patterns: vec!["https://logs.*.amazonaws.com".into()],
            http: true,
            secrets: vec![],
        };
        let opts: Vec<(String, String)> = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::plugin::state::test_state(Policy::new(&needs, &Grants::all(), &opts, false))
    }

    fn req(url: String) -> Request {
        Request {
            method: "POST".into(),
            url,
            headers: vec![Kv {
                key: "x-amz-target".into(),
                value: "Logs.PutLogEvents".into(),
            }],
            body: b"{}".to_vec(),
            timeout_ms: 2000,
        }
    }

    #[test]
    fn sends_to_the_endpoint_an_option_names_and_nowhere_else() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0; 4096];
            let n = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 2\r\n\r\nok").unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let url = format!("http://127.0.0.1:{port}");
        let mut st = state(&[("awslogs-endpoint", &url)]);
        let resp = Host::send(&mut st, req(format!("{url}/"))).unwrap();
        // The redirect is returned to the plugin, not followed.
        assert_eq!(resp.status, 302);
        assert_eq!(resp.body, b"ok");
        let seen = server.join().unwrap();
        assert!(
            seen.to_ascii_lowercase()
                .contains("x-amz-target: logs.putlogevents"),
            "{seen}"
        );

        let err = Host::send(
            &mut st,
            req(format!("http://127.0.0.1:{}/", port.wrapping_add(1))),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Denied(m) if m.contains("neither a log option")),
            "{err:?}"
        );
        let err = Host::send(
            &mut st,
            req("http://169.254.169.254/latest/meta-data".into()),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Denied(m) if m.contains("link-local")),
            "{err:?}"
        );
    }
}
