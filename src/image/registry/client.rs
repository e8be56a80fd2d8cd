//! HTTP side of the registry API v2: choosing https or (when allowed) http, the anonymous →
//! challenge → token dance, and turning transport failures into actionable errors.

use std::io;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ureq::http::{Response, StatusCode, header};
use ureq::tls::TlsConfig;
use ureq::{Agent, Body};

use super::RegistryError;
use super::challenge::{self, Challenge};

const MAX_ERROR_BODY: u64 = 64 * 1024;
const MAX_TOKEN_BODY: u64 = 1024 * 1024;

pub(super) struct Client {
    /// The registry as users name it (`docker.io`, `127.0.0.1:5000`), for messages.
    pub registry: String,
    /// The host serving the API (`registry-1.docker.io` for docker.io).
    host: String,
    /// The repository pulls are for, which sets the token scope; `None` for login.
    repository: Option<String>,
    agent: Agent,
    insecure: bool,
    creds: Option<(String, String)>,
    /// `https://host` or `http://host`, fixed by the first successful contact.
    base: OnceLock<String>,
    /// The `Authorization` value to send, once the registry asked for one.
    authorization: Mutex<Option<String>>,
}

impl Client {
    pub fn new(
        registry: &str,
        host: &str,
        repository: Option<&str>,
        creds: Option<(String, String)>,
        insecure: bool,
    ) -> Client {
        let tls = TlsConfig::builder().disable_verification(insecure).build();
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(concat!("burrow/", env!("CARGO_PKG_VERSION")))
            // Layer bytes must reach the digest check exactly as stored.
            .accept_encoding("identity")
            // Blob downloads redirect to storage; keep credentials only on the same host.
            .max_redirects(10)
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client {
            registry: registry.to_string(),
            host: host.to_string(),
            repository: repository.map(str::to_string),
            agent,
            insecure,
            creds,
            base: OnceLock::new(),
            authorization: Mutex::new(None),
        }
    }

    fn user(&self) -> Option<&str> {
        self.creds.as_ref().map(|(u, _)| u.as_str())
    }

    fn basic_header(&self) -> Option<String> {
        self.creds
            .as_ref()
            .map(|(u, p)| format!("Basic {}", BASE64.encode(format!("{u}:{p}"))))
    }

    /// Contacts `/v2/` anonymously to choose the scheme, then authenticates as the registry
    /// asks. Done once before any other request so a dead registry fails fast.
    pub fn connect(&self) -> Result<(), RegistryError> {
        let resp = self.ping()?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            401 => self.authenticate(&resp, false),
            404 => Err(RegistryError::NotARegistry {
                registry: self.registry.clone(),
                status: 404,
            }),
            _ => Err(status_error(&self.registry, "GET /v2/", resp)),
        }
    }

    /// Checks the credentials: like [`Client::connect`], but a registry that refuses them
    /// is an error even when it would accept anonymous requests to `/v2/`.
    pub fn login(&self) -> Result<(), RegistryError> {
        let resp = self.ping()?;
        match resp.status().as_u16() {
            200..=299 => {
                tracing::debug!(registry = %self.registry, "registry needs no credentials");
                Ok(())
            }
            401 => {
                self.authenticate(&resp, true)?;
                let resp = self.send("/v2/", None)?;
                match resp.status().as_u16() {
                    200..=299 => Ok(()),
                    401 | 403 => Err(self.rejected()),
                    _ => Err(status_error(&self.registry, "GET /v2/", resp)),
                }
            }
            404 => Err(RegistryError::NotARegistry {
                registry: self.registry.clone(),
                status: 404,
            }),
            _ => Err(status_error(&self.registry, "GET /v2/", resp)),
        }
    }

    fn ping(&self) -> Result<Response<Body>, RegistryError> {
        let schemes: &[&str] = if self.insecure {
            // Without verification https still works for self-signed registries; only a
            // registry that speaks no TLS at all needs plain http.
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut last = None;
        for scheme in schemes {
            let base = format!("{scheme}://{}", self.host);
            match self.agent.get(format!("{base}/v2/")).call() {
                Ok(resp) => {
                    tracing::debug!(registry = %self.registry, %base, status = resp.status().as_u16(), "registry answered");
                    let _ = self.base.set(base);
                    return Ok(resp);
                }
                Err(err) => {
                    tracing::debug!(registry = %self.registry, %base, %err, "cannot reach registry");
                    last = Some(err);
                }
            }
        }
        Err(self.transport_error(last.expect("at least one scheme is tried")))
    }

    fn base(&self) -> &str {
        self.base
            .get()
            .map(String::as_str)
            .expect("Client::connect runs before any request")
    }

    /// A GET on the registry with the current credentials, re-authenticating once when the
    /// registry answers 401 (a token expired or lacks the scope). 401/403 after that become
    /// errors; every other status is the caller's to judge.
    pub fn get(&self, path: &str, accept: Option<&str>) -> Result<Response<Body>, RegistryError> {
        let resp = self.send(path, accept)?;
        let resp = if resp.status() == StatusCode::UNAUTHORIZED {
            self.authenticate(&resp, false)?;
            self.send(path, accept)?
        } else {
            resp
        };
        let sent_basic = self
            .authorization
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "));
        match resp.status().as_u16() {
            401 | 403 if self.creds.is_none() => Err(self.unauthorized()),
            // With Basic auth a 401 can only mean the password is wrong; with a token it
            // means the account lacks access to the repository.
            401 if sent_basic => Err(self.rejected()),
            401 | 403 => Err(RegistryError::Denied {
                registry: self.registry.clone(),
                repository: self.repository.clone().unwrap_or_default(),
                user: self.user().unwrap_or_default().to_string(),
            }),
            _ => Ok(resp),
        }
    }

    fn send(&self, path: &str, accept: Option<&str>) -> Result<Response<Body>, RegistryError> {
        let url = format!("{}{path}", self.base());
        let mut req = self.agent.get(&url);
        if let Some(accept) = accept {
            req = req.header(header::ACCEPT, accept);
        }
        let auth = self
            .authorization
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(auth) = auth {
            req = req.header(header::AUTHORIZATION, auth);
        }
        req.call().map_err(|e| self.transport_error(e))
    }

    /// Answers a 401: Bearer challenges get a token from the realm, Basic ones the stored
    /// credentials. `login` asks the token service to check the credentials without a scope.
    fn authenticate(&self, resp: &Response<Body>, login: bool) -> Result<(), RegistryError> {
        let headers: Vec<&str> = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let challenges: Vec<Challenge> = headers.iter().flat_map(|h| challenge::parse(h)).collect();
        let chosen = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }))
            .or(challenges.first());
        let value = match chosen {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let token = self.fetch_token(realm, service.as_deref(), scope.as_deref(), login)?;
                format!("Bearer {token}")
            }
            Some(Challenge::Basic) => self.basic_header().ok_or_else(|| self.unauthorized())?,
            None => {
                return Err(RegistryError::BadChallenge {
                    registry: self.registry.clone(),
                    header: headers.join(", "),
                });
            }
        };
        *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        Ok(())
    }

    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        challenge_scope: Option<&str>,
        login: bool,
    ) -> Result<String, RegistryError> {
        let mut req = self.agent.get(realm);
        if let Some(service) = service {
            req = req.query("service", service);
        }
        let ours = self
            .repository
            .as_ref()
            .map(|r| format!("repository:{r}:pull"));
        if let Some(scope) = &ours {
            req = req.query("scope", scope);
        }
        if let Some(scope) = challenge_scope.filter(|s| Some(*s) != ours.as_deref() && !login) {
            req = req.query("scope", scope);
        }
        if let Some(user) = self.user() {
            // Docker sends the account so the token service can check it at login.
            req = req.query("account", user);
        }
        if let Some(basic) = self.basic_header() {
            req = req.header(header::AUTHORIZATION, basic);
        }
        let mut resp = req.call().map_err(|e| self.transport_error(e))?;
        match resp.status().as_u16() {
            200..=299 => {}
            401 | 403 if self.creds.is_some() => return Err(self.rejected()),
            401 | 403 => return Err(self.unauthorized()),
            _ => return Err(status_error(&self.registry, "the token request", resp)),
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_TOKEN_BODY)
            .read_to_vec()
            .map_err(|source| RegistryError::Read {
                registry: self.registry.clone(),
                what: "the token response".to_string(),
                source,
            })?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|source| RegistryError::TokenResponse {
                realm: realm.to_string(),
                source,
            })?;
        parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| RegistryError::NoToken {
                realm: realm.to_string(),
            })
    }

    fn unauthorized(&self) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            repository: self
                .repository
                .clone()
                .unwrap_or_else(|| self.registry.clone()),
        }
    }

    fn rejected(&self) -> RegistryError {
        RegistryError::CredentialsRejected {
            registry: self.registry.clone(),
            user: self.user().unwrap_or_default().to_string(),
        }
    }

    pub fn transport_error(&self, err: ureq::Error) -> RegistryError {
        transport_error(&self.registry, self.insecure, err)
    }
}

pub(super) fn transport_error(registry: &str, insecure: bool, err: ureq::Error) -> RegistryError {
    let unreachable = if insecure {
        "is it running?"
    } else {
        "is it running? for a plain-http registry use --tls-verify=false"
    };
    let name_hint = "check the registry name and your dns";
    let (reason, hint) = match &err {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => {
            return RegistryError::Tls {
                registry: registry.to_string(),
                source: err,
            };
        }
        ureq::Error::Io(e) if is_tls_failure(e) => {
            return RegistryError::Tls {
                registry: registry.to_string(),
                source: err,
            };
        }
        // getaddrinfo failures arrive as uncategorised I/O errors.
        ureq::Error::Io(e) if e.to_string().contains("lookup address") => {
            ("host not found", name_hint)
        }
        ureq::Error::Io(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused => ("connection refused", unreachable),
            io::ErrorKind::ConnectionReset => ("connection reset", unreachable),
            io::ErrorKind::TimedOut => ("timed out", unreachable),
            io::ErrorKind::UnexpectedEof => ("connection closed early", unreachable),
            _ => ("i/o error", unreachable),
        },
        ureq::Error::HostNotFound => ("host not found", name_hint),
        ureq::Error::Timeout(_) => ("timed out", unreachable),
        ureq::Error::ConnectionFailed => ("connection failed", unreachable),
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => (
            "bad redirect",
            "the registry or its storage is misconfigured",
        ),
        ureq::Error::Protocol(_) => ("the server does not speak http", unreachable),
        _ => ("request failed", unreachable),
    };
    RegistryError::Connect {
        registry: registry.to_string(),
        reason,
        hint,
        source: err,
    }
}

/// rustls reports handshake failures (a plain-http server answering a ClientHello, an
/// untrusted certificate) as `InvalidData` I/O errors wrapping a `rustls::Error`.
fn is_tls_failure(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData && e.get_ref().is_some()
}

/// A registry error status turned into a message, using the registry's own
/// `{"errors":[{"code","message"}]}` body when there is one.
pub(super) fn status_error(registry: &str, what: &str, mut resp: Response<Body>) -> RegistryError {
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_ERROR_BODY)
        .read_to_string()
        .unwrap_or_default();
    RegistryError::Status {
        registry: registry.to_string(),
        what: what.to_string(),
        status,
        message: error_message(&body).unwrap_or_else(|| {
            resp.status()
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_lowercase()
        }),
    }
}

/// The message(s) from a registry's JSON error body.
pub(super) fn error_message(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let errors: Errors = serde_json::from_str(body).ok()?;
    let parts: Vec<String> = errors
        .errors
        .into_iter()
        .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
            (false, false) => format!("{} ({})", e.message, e.code),
            (true, false) => e.message,
            (false, true) => e.code,
            (true, true) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies() {
        assert_eq!(
            error_message(
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#
            )
            .as_deref(),
            Some("manifest unknown (MANIFEST_UNKNOWN)")
        );
        assert_eq!(
            error_message(r#"{"errors":[{"code":"A"},{"message":"b"}]}"#).as_deref(),
            Some("A; b")
        );
        assert_eq!(error_message("<html>502</html>"), None);
        assert_eq!(error_message(r#"{"errors":[]}"#), None);
    }

    #[test]
    fn transport_errors_are_actionable() {
        let refused = || ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        let msg = transport_error("127.0.0.1:5000", false, refused()).to_string();
        assert_eq!(
            msg,
            "cannot reach registry 127.0.0.1:5000: connection refused (is it running? for a plain-http registry use --tls-verify=false)"
        );
        let msg = transport_error("127.0.0.1:5000", true, refused()).to_string();
        assert!(!msg.contains("--tls-verify"), "{msg}");
        let tls = transport_error("r:1", false, ureq::Error::Tls("bad"));
        assert!(matches!(tls, RegistryError::Tls { .. }));
        assert!(tls.to_string().contains("--tls-verify=false"));
        assert!(!tls.is_transient());
        assert!(transport_error("r:1", false, refused()).is_transient());
    }
}
