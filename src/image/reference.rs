//! Image references (`busybox`, `127.0.0.1:5000/team/app:1.2`, `app@sha256:…`) parsed and
//! normalised the way Docker does it (github.com/distribution/reference), so that names users
//! type here mean the same image they mean to `docker`.

use std::fmt;

/// The registry that short names such as `busybox` or `user/app` refer to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The host that actually serves the HTTP API of [`DEFAULT_REGISTRY`].
pub const DEFAULT_REGISTRY_API_HOST: &str = "registry-1.docker.io";
/// Old spelling of Docker Hub that Docker still accepts and rewrites.
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// Single-component names on Docker Hub live under this namespace.
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: the image name is empty")]
    Empty,
    #[error(
        "invalid reference format: repository name {repository:?} in {reference:?} must be lowercase"
    )]
    Uppercase {
        reference: String,
        repository: String,
    },
    #[error(
        "invalid reference format: {reference:?} has an invalid repository name {repository:?} (use lowercase letters, digits and single '.', '_', '__' or '-' between them, components separated by '/')"
    )]
    InvalidRepository {
        reference: String,
        repository: String,
    },
    #[error(
        "invalid reference format: {reference:?} is a 64-character hexadecimal string, which names an image id, not a repository"
    )]
    HexName { reference: String },
    #[error(
        "invalid reference format: repository name in {reference:?} is longer than {MAX_NAME_LEN} characters"
    )]
    NameTooLong { reference: String },
    #[error("invalid reference format: {reference:?} has an invalid registry host {registry:?}")]
    InvalidRegistry { reference: String, registry: String },
    #[error(
        "invalid reference format: {reference:?} has an invalid tag {tag:?} (a tag is 1-128 letters, digits, '_', '.' or '-' and does not start with '.' or '-')"
    )]
    InvalidTag { reference: String, tag: String },
    #[error(
        "invalid reference format: {reference:?} has an invalid digest {digest:?} (expected sha256: followed by 64 lowercase hex digits)"
    )]
    InvalidDigest { reference: String, digest: String },
    #[error("invalid reference format: {reference:?} has more than one '@'")]
    MultipleDigests { reference: String },
}

/// A fully normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port when given: `docker.io`, `127.0.0.1:5000`, `localhost`.
    pub registry: String,
    /// Path inside the registry: `library/busybox`, `team/app`.
    pub repository: String,
    /// `None` only when the reference names a digest and no tag.
    pub tag: Option<String>,
    /// `sha256:<64 lowercase hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises a reference as `docker pull` does: a missing registry means
    /// docker.io, single-component Docker Hub names gain `library/`, and a reference without
    /// tag or digest gets the tag `latest`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((_, d)) if d.contains('@') => {
                return Err(ReferenceError::MultipleDigests {
                    reference: s.to_string(),
                });
            }
            Some((n, d)) => (n, Some(d)),
            None => (s, None),
        };
        // A ':' after the last '/' separates the tag; one before it belongs to a registry port.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if name.len() == 64 && is_lower_hex(name) {
            return Err(ReferenceError::HexName {
                reference: s.to_string(),
            });
        }

        let (registry, remainder) = split_registry(name);
        let repository = if registry == DEFAULT_REGISTRY && !remainder.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{remainder}")
        } else {
            remainder.to_string()
        };

        if repository.to_lowercase() != repository {
            return Err(ReferenceError::Uppercase {
                reference: s.to_string(),
                repository,
            });
        }
        if !is_valid_registry(&registry) {
            return Err(ReferenceError::InvalidRegistry {
                reference: s.to_string(),
                registry,
            });
        }
        if !is_valid_repository(&repository) {
            return Err(ReferenceError::InvalidRepository {
                reference: s.to_string(),
                repository,
            });
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong {
                reference: s.to_string(),
            });
        }
        if let Some(tag) = tag
            && !is_valid_tag(tag)
        {
            return Err(ReferenceError::InvalidTag {
                reference: s.to_string(),
                tag: tag.to_string(),
            });
        }
        if let Some(digest) = digest
            && !is_valid_digest(digest)
        {
            return Err(ReferenceError::InvalidDigest {
                reference: s.to_string(),
                digest: digest.to_string(),
            });
        }

        let tag = match (tag, digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// `docker.io/library/busybox`.
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form Docker shows in its REPOSITORY column: `busybox`, `user/app`,
    /// `127.0.0.1:5000/team/app`.
    pub fn familiar_repo(&self) -> String {
        if self.registry != DEFAULT_REGISTRY {
            return self.repo_name();
        }
        match self.repository.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.repository.clone(),
        }
    }

    /// The short form with tag and digest: `busybox:latest`, `user/app@sha256:…`.
    pub fn familiar(&self) -> String {
        self.with_suffix(self.familiar_repo())
    }

    /// `docker.io/library/busybox:latest` when the reference has a tag.
    pub fn tagged_name(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{}", self.repo_name(), t))
    }

    /// The host to talk HTTP to: Docker Hub's API lives on a different name than its images.
    pub fn api_host(&self) -> &str {
        registry_api_host(&self.registry)
    }

    /// What goes after `/manifests/` in the API: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    fn with_suffix(&self, mut s: String) -> String {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_suffix(self.repo_name()))
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Maps a registry name as users write it (`docker.io`, `index.docker.io`,
/// `https://index.docker.io/v1/`, `127.0.0.1:5000`) to the name references use.
pub fn normalize_registry(registry: &str) -> String {
    let r = registry
        .strip_prefix("https://")
        .or_else(|| registry.strip_prefix("http://"))
        .unwrap_or(registry);
    let r = r.split('/').next().unwrap_or(r);
    match r {
        LEGACY_DEFAULT_REGISTRY | DEFAULT_REGISTRY_API_HOST => DEFAULT_REGISTRY.to_string(),
        other => other.to_string(),
    }
}

/// The host serving the HTTP API for a (normalised) registry name.
pub fn registry_api_host(registry: &str) -> &str {
    if registry == DEFAULT_REGISTRY {
        DEFAULT_REGISTRY_API_HOST
    } else {
        registry
    }
}

/// Docker's rule: the first component is a registry only if it looks like a host (has a '.'
/// or ':', is `localhost`, or has uppercase letters, which repositories cannot).
fn split_registry(name: &str) -> (String, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            let registry = if first == LEGACY_DEFAULT_REGISTRY {
                DEFAULT_REGISTRY
            } else {
                first
            };
            (registry.to_string(), rest)
        }
        _ => (DEFAULT_REGISTRY.to_string(), name),
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256:` followed by exactly 64 lowercase hex digits.
pub fn is_valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && is_lower_hex(hex))
}

fn is_valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LEN
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-')
}

/// host (`a.b-c.d`), IPv6 in brackets (`[::1]`), each optionally with `:port`.
fn is_valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after.strip_prefix(':') {
            Some(port) => ("", Some(port)),
            None if after.is_empty() => ("", None),
            None => return false,
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => {
                if h.is_empty() {
                    return false;
                }
                (h, Some(p))
            }
            None => (registry, None),
        }
    };
    let host_ok = host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    }) || host.is_empty() && registry.starts_with('[');
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// Components of `[a-z0-9]+` joined by `.`, `_`, `__` or one or more `-`.
fn is_valid_repository(repo: &str) -> bool {
    repo.split('/').all(is_valid_path_component)
}

fn is_valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    let mut first = true;
    while i < b.len() {
        if !first {
            // A separator must come first, then at least one alphanumeric.
            let start = i;
            match b[i] {
                b'.' => i += 1,
                b'_' => {
                    i += 1;
                    if i < b.len() && b[i] == b'_' {
                        i += 1;
                    }
                }
                b'-' => {
                    while i < b.len() && b[i] == b'-' {
                        i += 1;
                    }
                }
                _ => return false,
            }
            if i == start {
                return false;
            }
        }
        let run = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == run {
            return false;
        }
        first = false;
    }
    !first
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:8f1d3a4c2b9e7f6a5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e";

    fn ok(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn normalises_like_docker() {
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("busybox", "docker.io", "library/busybox", Some("latest")),
            ("busybox:1.36", "docker.io", "library/busybox", Some("1.36")),
            ("user/app", "docker.io", "user/app", Some("latest")),
            (
                "docker.io/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "index.docker.io/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "index.docker.io/user/app:v1",
                "docker.io",
                "user/app",
                Some("v1"),
            ),
            (
                "docker.io/library/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "docker.io/library/a/b",
                "docker.io",
                "library/a/b",
                Some("latest"),
            ),
            ("localhost/app", "localhost", "app", Some("latest")),
            ("localhost:5000/app:1", "localhost:5000", "app", Some("1")),
            (
                "127.0.0.1:5000/team/app:1.2",
                "127.0.0.1:5000",
                "team/app",
                Some("1.2"),
            ),
            (
                "quay.io/a/b/c/d:x_Y-1.z",
                "quay.io",
                "a/b/c/d",
                Some("x_Y-1.z"),
            ),
            ("[::1]:5000/app", "[::1]:5000", "app", Some("latest")),
            ("[fe80::1]/app", "[fe80::1]", "app", Some("latest")),
            // Uppercase first component is a host, as in Docker.
            ("Example/app", "Example", "app", Some("latest")),
            // No '/' so "localhost:5000" is a repository with a tag, as in Docker.
            (
                "localhost:5000",
                "docker.io",
                "library/localhost",
                Some("5000"),
            ),
            (
                "a__b/c---d/e.f_g",
                "docker.io",
                "a__b/c---d/e.f_g",
                Some("latest"),
            ),
        ];
        for (input, registry, repository, tag) in cases {
            let r = ok(input);
            assert_eq!(r.registry, *registry, "{input}");
            assert_eq!(r.repository, *repository, "{input}");
            assert_eq!(r.tag.as_deref(), *tag, "{input}");
            assert_eq!(r.digest, None, "{input}");
        }
    }

    #[test]
    fn digests_and_tags() {
        let r = ok(&format!("app@{D}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/app@{D}"));
        assert_eq!(r.tagged_name(), None);

        let r = ok(&format!("127.0.0.1:5000/app:1.2@{D}"));
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/app:1.2@{D}"));

        let r = ok("busybox");
        assert_eq!(r.manifest_ref(), "latest");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
    }

    #[test]
    fn names() {
        let r = ok("busybox");
        assert_eq!(r.repo_name(), "docker.io/library/busybox");
        assert_eq!(r.familiar_repo(), "busybox");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(
            r.tagged_name().as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(ok("user/app").familiar_repo(), "user/app");
        assert_eq!(ok("docker.io/library/a/b").familiar_repo(), "library/a/b");
        let r = ok("127.0.0.1:5000/team/app:1.2");
        assert_eq!(r.familiar_repo(), "127.0.0.1:5000/team/app");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(r.familiar(), "127.0.0.1:5000/team/app:1.2");
        assert_eq!(ok("localhost/app").familiar_repo(), "localhost/app");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "docker.io/library/busybox:latest",
            "127.0.0.1:5000/team/app:1.2",
            "localhost/x/y:z",
        ] {
            let r = ok(s);
            assert_eq!(r.to_string(), s);
            assert_eq!(ok(&r.to_string()), r);
        }
    }

    #[test]
    fn rejects_bad_references() {
        let long_tag = format!("app:{}", "a".repeat(129));
        let long_name = format!("example.com/{}", "a".repeat(250));
        let hex_name = "a".repeat(64);
        let upper_digest = format!("app@sha256:{}", "A".repeat(64));
        let short_digest = "app@sha256:abcd".to_string();
        let md5_digest = format!("app@md5:{}", "a".repeat(32));
        use ReferenceError as E;
        let kind = |e: &ReferenceError| match e {
            E::Empty => "empty",
            E::Uppercase { .. } => "uppercase",
            E::InvalidRepository { .. } => "repository",
            E::HexName { .. } => "hex",
            E::NameTooLong { .. } => "long",
            E::InvalidRegistry { .. } => "registry",
            E::InvalidTag { .. } => "tag",
            E::InvalidDigest { .. } => "digest",
            E::MultipleDigests { .. } => "multiple",
        };
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("Busybox", "uppercase"),
            ("user/App", "uppercase"),
            ("example.com/App:1", "uppercase"),
            (":", "repository"),
            ("/busybox", "repository"),
            ("busybox/", "repository"),
            ("a//b", "repository"),
            ("a..b", "repository"),
            ("a.-b", "repository"),
            ("a___b", "repository"),
            ("-a", "repository"),
            ("a-", "repository"),
            ("a b", "repository"),
            ("busybox:", "tag"),
            ("busybox:-x", "tag"),
            ("busybox:.x", "tag"),
            ("busybox:a/b", "registry"),
            (&long_tag, "tag"),
            (&long_name, "long"),
            (&hex_name, "hex"),
            (&upper_digest, "digest"),
            (&short_digest, "digest"),
            (&md5_digest, "digest"),
            ("app@", "digest"),
            ("a@b@c", "multiple"),
            ("example.com:port/app", "registry"),
            ("-bad.com/app", "registry"),
            ("bad-.com/app", "registry"),
            ("a..com/app", "registry"),
            ("[zz]:5000/app", "registry"),
            (":5000/app", "registry"),
        ];
        for (input, expected) in cases {
            match Reference::parse(input) {
                Ok(r) => panic!("{input:?} should be rejected, got {r:?}"),
                Err(e) => assert_eq!(kind(&e), *expected, "{input:?}: {e}"),
            }
        }
    }

    #[test]
    fn error_messages_name_the_reference() {
        let e = Reference::parse("user/App").unwrap_err().to_string();
        assert!(e.contains("\"user/App\"") && e.contains("lowercase"), "{e}");
        let e = Reference::parse("app@sha256:12").unwrap_err().to_string();
        assert!(e.contains("sha256:12") && e.contains("64"), "{e}");
    }

    #[test]
    fn registry_names_normalise() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("index.docker.io"), "docker.io");
        assert_eq!(normalize_registry("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize_registry("docker.io"), "docker.io");
        assert_eq!(
            normalize_registry("http://127.0.0.1:5000"),
            "127.0.0.1:5000"
        );
        assert_eq!(normalize_registry("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(registry_api_host("quay.io"), "quay.io");
    }

    #[test]
    fn digest_validation() {
        assert!(is_valid_digest(D));
        assert!(!is_valid_digest(&D.to_uppercase()));
        assert!(!is_valid_digest(&D[..D.len() - 1]));
        assert!(!is_valid_digest(&format!("{D}0")));
        assert!(!is_valid_digest("sha256:../../../../etc/passwd"));
        assert!(!is_valid_digest(&D.replace("sha256", "sha512")));
    }
}
