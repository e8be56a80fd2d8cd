//! Registry client (HTTP API v2): pulls images into the blob store and checks logins.
//!
//! Layout: `client` speaks HTTP and authentication, `challenge` parses `WWW-Authenticate`,
//! `manifest` knows the formats and platform choice, `pull` puts it together.

mod challenge;
mod client;
pub(crate) mod manifest;
mod pull;

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use pull::{fetch_image, login};

use crate::image::auth::AuthError;
use crate::image::blobs::BlobError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid platform {platform:?}: expected os/arch[/variant], like linux/arm64/v8")]
    InvalidPlatform { platform: String },
    #[error("cannot reach registry {registry}: {reason} ({hint})")]
    Connect {
        registry: String,
        reason: &'static str,
        hint: &'static str,
        #[source]
        source: ureq::Error,
    },
    #[error(
        "cannot make a tls connection to registry {registry} (if it serves plain http or has a self-signed certificate, use --tls-verify=false)"
    )]
    Tls {
        registry: String,
        #[source]
        source: ureq::Error,
    },
    #[error("{registry} does not serve the registry api v2 (GET /v2/ answered {status})")]
    NotARegistry { registry: String, status: u16 },
    #[error(
        "unauthorized: {registry} needs credentials for {repository} (burrow login {registry}), or the repository does not exist"
    )]
    Unauthorized {
        registry: String,
        repository: String,
    },
    #[error(
        "unauthorized: {registry} rejected the username or password of {user:?} (burrow login {registry} with the right ones)"
    )]
    CredentialsRejected { registry: String, user: String },
    #[error(
        "denied: {user:?} may not pull {repository} from {registry}, or the repository does not exist"
    )]
    Denied {
        registry: String,
        repository: String,
        user: String,
    },
    #[error(
        "registry {registry} sent an authentication challenge burrow cannot answer: {header:?}"
    )]
    BadChallenge { registry: String, header: String },
    #[error("token service {realm} sent an invalid response")]
    TokenResponse {
        realm: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("token service {realm} sent no token")]
    NoToken { realm: String },
    #[error("registry {registry} answered {status} to {what}: {message}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        message: String,
    },
    #[error("cannot read {what} from registry {registry}")]
    Read {
        registry: String,
        what: String,
        #[source]
        source: ureq::Error,
    },
    #[error("manifest unknown: {reference} does not exist")]
    ManifestUnknown { reference: String },
    #[error("manifest of {reference} is larger than {limit} bytes; refusing it")]
    ManifestTooLarge { reference: String, limit: u64 },
    #[error("manifest of {reference} is not valid json")]
    BadManifest {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest of {reference} is invalid: {reason}")]
    InvalidManifest {
        reference: String,
        reason: &'static str,
    },
    #[error(
        "manifest of {reference} has media type {media_type:?}, which burrow cannot pull (it pulls OCI and Docker schema 2 images)"
    )]
    UnsupportedManifest {
        reference: String,
        media_type: String,
    },
    #[error("{reference} is not a container image (its config has media type {media_type:?})")]
    NotAnImage {
        reference: String,
        media_type: String,
    },
    #[error("manifest of {reference} names an invalid digest {digest:?}")]
    InvalidDigest { reference: String, digest: String },
    #[error("manifest of {reference} does not match its digest: expected {expected}, got {actual}")]
    ManifestDigestMismatch {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{reference} has no image for {wanted} (available: {}; choose one with --platform)",
        available.join(", ")
    )]
    NoMatchingPlatform {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },
    #[error("layer {digest} has media type {media_type:?}, which burrow cannot unpack")]
    UnsupportedLayer { digest: String, media_type: String },
    #[error(
        "layer {digest} is a foreign layer ({media_type}) that registries do not serve; burrow cannot pull images that need one"
    )]
    ForeignLayer { digest: String, media_type: String },
    #[error("blob {digest} is missing from {repository} (the image in the registry is incomplete)")]
    BlobUnknown { digest: String, repository: String },
    #[error("blob {digest} from {repository} does not match its digest")]
    BlobMismatch { digest: String, repository: String },
    #[error("blob {digest} from {repository} is {actual} bytes, but its manifest says {expected}")]
    BlobSize {
        digest: String,
        repository: String,
        expected: u64,
        actual: u64,
    },
    #[error("download of blob {digest} from {repository} ended after {got} of {expected} bytes")]
    Truncated {
        digest: String,
        repository: String,
        got: u64,
        expected: u64,
    },
    #[error("download of blob {digest} from {registry} failed")]
    Stream {
        digest: String,
        registry: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot store blob {digest} in the local content store")]
    Store {
        digest: String,
        #[source]
        source: BlobError,
    },
    #[error("cannot read the stored credentials")]
    Auth(#[source] AuthError),
}

impl RegistryError {
    /// Failures worth another try: the network, a truncated body, the registry's 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Connect { .. }
            | RegistryError::Read { .. }
            | RegistryError::Stream { .. }
            | RegistryError::Truncated { .. } => true,
            RegistryError::Status { status, .. } => {
                matches!(*status, 408 | 500 | 502 | 503 | 504) || (*status >= 520 && *status < 600)
            }
            _ => false,
        }
    }
}

/// An OS/architecture pair as registries name them (Go's GOOS/GOARCH).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "mips" if cfg!(target_endian = "little") => "mipsle",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform::normalized(std::env::consts::OS, arch, None)
    }

    /// `linux/arm64/v8`, `linux/amd64`, or a bare architecture such as `arm64` (Linux).
    pub fn parse(s: &str) -> Result<Platform, RegistryError> {
        let invalid = || RegistryError::InvalidPlatform {
            platform: s.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || p.contains(char::is_whitespace))
        {
            return Err(invalid());
        }
        match parts.as_slice() {
            [os] if KNOWN_OS.contains(&os.to_lowercase().as_str()) => {
                let host = Platform::host();
                Ok(Platform::normalized(
                    os,
                    &host.architecture,
                    host.variant.as_deref(),
                ))
            }
            [arch] => Ok(Platform::normalized("linux", arch, None)),
            [os, arch] => Ok(Platform::normalized(os, arch, None)),
            [os, arch, variant] => Ok(Platform::normalized(os, arch, Some(variant))),
            _ => Err(invalid()),
        }
    }

    /// Applies containerd's spelling rules so equal platforms compare equal:
    /// `aarch64` = `arm64` = `arm64/v8`, `x86_64` = `amd64`, `arm` = `arm/v7`.
    pub(crate) fn normalized(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let os = match os.to_lowercase().as_str() {
            "macos" => "darwin".to_string(),
            other => other.to_string(),
        };
        let variant = variant.filter(|v| !v.is_empty()).map(str::to_lowercase);
        let (arch, variant) = match arch.to_lowercase().as_str() {
            "i386" | "i686" | "x86" => ("386".to_string(), variant),
            "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), variant.filter(|v| v != "v1")),
            "aarch64" | "arm64" => (
                "arm64".to_string(),
                variant.filter(|v| v != "v8" && v != "8"),
            ),
            "armhf" => ("arm".to_string(), Some("v7".to_string())),
            "armel" => ("arm".to_string(), Some("v6".to_string())),
            "arm" => (
                "arm".to_string(),
                Some(match variant.as_deref() {
                    None => "v7".to_string(),
                    Some(v @ ("5" | "6" | "7" | "8")) => format!("v{v}"),
                    Some(v) => v.to_string(),
                }),
            ),
            other => (other.to_string(), variant),
        };
        Platform {
            os,
            architecture: arch,
            variant,
        }
    }
}

const KNOWN_OS: &[&str] = &["linux", "windows", "darwin", "freebsd", "macos"];

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Allow registries without valid TLS: https without verification first, then plain
    /// http (`--tls-verify=false`, or the registry is listed as insecure in the config).
    pub insecure: bool,
    pub platform: Platform,
    /// Docker `config.json`-format credential files; the first one with a match wins.
    pub auth_files: Vec<PathBuf>,
    /// Layer downloads at once.
    pub max_parallel: usize,
    /// Further attempts per request after a network failure or a 5xx.
    pub retries: u32,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: false,
            platform: Platform::host(),
            auth_files: Vec::new(),
            max_parallel: 3,
            retries: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// The manifest to pull is known (the platform's manifest when the tag names an index).
    Resolved { manifest_digest: String },
    /// The layer is already in the store and is not downloaded.
    LayerExists { digest: String },
    /// A download (or a retry of one) begins.
    LayerStart { digest: String, size: u64 },
    /// Bytes of this layer received so far in the current attempt (cumulative, not a delta).
    LayerBytes { digest: String, bytes: u64 },
    /// The layer is verified and stored.
    LayerDone { digest: String },
}

/// Receives progress from pulls; called from several download threads at once.
pub trait Progress: Sync {
    fn event(&self, ev: ProgressEvent);
}

impl<F: Fn(ProgressEvent) + Sync> Progress for F {
    fn event(&self, ev: ProgressEvent) {
        self(ev)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedLayer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub compression: crate::image::Compression,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedImage {
    /// Digest of the platform's image manifest (`manifest`).
    pub manifest_digest: String,
    pub manifest: Vec<u8>,
    pub config_digest: String,
    pub config: Vec<u8>,
    /// In manifest order, duplicates included (they match the config's diff ids).
    pub layers: Vec<FetchedLayer>,
    /// Digest of the index the manifest was chosen from, when the reference named one
    /// (what `docker images --digests` shows for multi-platform images).
    pub index_digest: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parsing() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(
            p,
            Platform {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: None
            }
        );
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/arm/v6").unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/armhf").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("Linux/AMD64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/386").unwrap().to_string(),
            "linux/386"
        );
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/amd64/v3")
                .unwrap()
                .variant
                .as_deref(),
            Some("v3")
        );
        assert_eq!(Platform::parse("linux").unwrap(), Platform::host());
        for bad in [
            "",
            "/",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/ amd64",
        ] {
            let err = Platform::parse(bad).unwrap_err();
            assert!(
                matches!(err, RegistryError::InvalidPlatform { .. }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn host_platform_uses_go_names() {
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(host.to_string(), "linux/amd64");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(host.to_string(), "linux/arm64");
    }

    #[test]
    fn transient_errors() {
        let status = |status| RegistryError::Status {
            registry: "r".into(),
            what: "w".into(),
            status,
            message: "m".into(),
        };
        assert!(status(503).is_transient());
        assert!(status(500).is_transient());
        assert!(!status(404).is_transient());
        assert!(!status(429).is_transient());
        assert!(
            !RegistryError::BlobMismatch {
                digest: "d".into(),
                repository: "r".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn no_platform_message_lists_choices() {
        let e = RegistryError::NoMatchingPlatform {
            reference: "busybox:latest".into(),
            wanted: "linux/s390x".into(),
            available: vec!["linux/amd64".into(), "linux/arm64".into()],
        };
        assert_eq!(
            e.to_string(),
            "busybox:latest has no image for linux/s390x (available: linux/amd64, linux/arm64; choose one with --platform)"
        );
    }
}
