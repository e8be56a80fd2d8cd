//! Manifest formats (OCI and Docker schema 2, images and indexes), layer media types, and
//! choosing a platform's manifest from an index. Pure data in, data out.

use serde::Deserialize;

use super::{Platform, RegistryError};
use crate::image::Compression;
use crate::image::blobs::digest_hex;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The `Accept` header for manifest requests: every format burrow can pull.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<DescriptorPlatform>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DescriptorPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawManifest {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// A parsed manifest: either one image or an index of per-platform images.
#[derive(Debug, PartialEq, Eq)]
pub enum Manifest {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index {
        manifests: Vec<Descriptor>,
    },
}

/// Parses manifest bytes. The content type the registry sent wins; when it is missing or
/// generic (`application/json`), the document's own `mediaType` and shape decide.
pub fn parse_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
    reference: &str,
) -> Result<Manifest, RegistryError> {
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|source| RegistryError::BadManifest {
            reference: reference.to_string(),
            source,
        })?;
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "text/plain");
    let media_type = match (content_type, raw.media_type.as_deref()) {
        (Some(c), _) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) if raw.schema_version == Some(1) => DOCKER_SCHEMA1.to_string(),
        (None, None) if raw.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) => OCI_MANIFEST.to_string(),
    };
    let invalid = |reason: &'static str| RegistryError::InvalidManifest {
        reference: reference.to_string(),
        reason,
    };
    let check = |d: &Descriptor| -> Result<(), RegistryError> {
        digest_hex(&d.digest)
            .map(|_| ())
            .map_err(|_| RegistryError::InvalidDigest {
                reference: reference.to_string(),
                digest: d.digest.clone(),
            })
    };
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = raw.config.ok_or_else(|| invalid("it has no config"))?;
            let layers = raw.layers.ok_or_else(|| invalid("it has no layers list"))?;
            check(&config)?;
            layers.iter().try_for_each(check)?;
            if config.media_type != OCI_CONFIG
                && config.media_type != DOCKER_CONFIG
                && !config.media_type.is_empty()
            {
                return Err(RegistryError::NotAnImage {
                    reference: reference.to_string(),
                    media_type: config.media_type,
                });
            }
            Ok(Manifest::Image { config, layers })
        }
        OCI_INDEX | DOCKER_LIST => {
            let manifests = raw
                .manifests
                .ok_or_else(|| invalid("it has no manifests list"))?;
            manifests.iter().try_for_each(check)?;
            Ok(Manifest::Index { manifests })
        }
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(RegistryError::UnsupportedManifest {
            reference: reference.to_string(),
            media_type,
        }),
        _ => Err(RegistryError::UnsupportedManifest {
            reference: reference.to_string(),
            media_type,
        }),
    }
}

/// How a layer of this media type is compressed. Foreign (non-distributable) layers and
/// unknown types are refused: burrow could not unpack them.
pub fn layer_compression(media_type: &str, digest: &str) -> Result<Compression, RegistryError> {
    if media_type.contains(".foreign.") || media_type.contains(".nondistributable.") {
        return Err(RegistryError::ForeignLayer {
            digest: digest.to_string(),
            media_type: media_type.to_string(),
        });
    }
    let known = media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.diff.");
    if known {
        if media_type.ends_with("tar+gzip") || media_type.ends_with(".tar.gzip") {
            return Ok(Compression::Gzip);
        }
        if media_type.ends_with("tar+zstd") || media_type.ends_with(".tar.zstd") {
            return Ok(Compression::Zstd);
        }
        if media_type.ends_with(".tar") {
            return Ok(Compression::None);
        }
    }
    Err(RegistryError::UnsupportedLayer {
        digest: digest.to_string(),
        media_type: media_type.to_string(),
    })
}

impl DescriptorPlatform {
    fn to_platform(&self) -> Platform {
        Platform::normalized(&self.os, &self.architecture, self.variant.as_deref())
    }
}

/// Picks the manifest for `wanted` from an index. An exact variant match is required when
/// one is asked for; otherwise an entry without a variant is preferred over one with. On no
/// match, returns the platforms on offer for the error message.
pub fn choose_platform<'a>(
    manifests: &'a [Descriptor],
    wanted: &Platform,
) -> Result<&'a Descriptor, Vec<String>> {
    let wanted = Platform::normalized(&wanted.os, &wanted.architecture, wanted.variant.as_deref());
    let candidates: Vec<(&Descriptor, Platform)> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| (d, p.to_platform())))
        .filter(|(_, p)| p.os == wanted.os && p.architecture == wanted.architecture)
        .collect();
    let chosen = match &wanted.variant {
        Some(v) => candidates
            .iter()
            .find(|(_, p)| p.variant.as_deref() == Some(v.as_str())),
        None => candidates
            .iter()
            .find(|(_, p)| p.variant.is_none())
            .or(candidates.first()),
    };
    if let Some((d, _)) = chosen {
        return Ok(d);
    }
    let mut available: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(DescriptorPlatform::to_platform)
        // Attestation manifests (buildkit) are listed as unknown/unknown.
        .filter(|p| p.os != "unknown")
        .map(|p| p.to_string())
        .collect();
    available.dedup();
    Err(available)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn index_json() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v6"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"windows","architecture":"amd64"}}}}
            ]}}"#,
            digest('a'),
            digest('b'),
            digest('c'),
            digest('d'),
            digest('e'),
            digest('f')
        )
    }

    fn pick(wanted: &str) -> Result<String, Vec<String>> {
        let Manifest::Index { manifests } =
            parse_manifest(index_json().as_bytes(), None, "x").unwrap()
        else {
            panic!("not an index")
        };
        choose_platform(&manifests, &Platform::parse(wanted).unwrap()).map(|d| d.digest.clone())
    }

    #[test]
    fn platform_selection_from_an_index() {
        assert_eq!(pick("linux/amd64").unwrap(), digest('a'));
        assert_eq!(pick("linux/arm/v7").unwrap(), digest('c'));
        assert_eq!(pick("linux/arm/v6").unwrap(), digest('b'));
        // arm64 and arm64/v8 are the same platform.
        assert_eq!(pick("linux/arm64").unwrap(), digest('d'));
        assert_eq!(pick("linux/arm64/v8").unwrap(), digest('d'));
        assert_eq!(pick("linux/aarch64").unwrap(), digest('d'));
        assert_eq!(pick("windows/amd64").unwrap(), digest('f'));
        let available = pick("linux/s390x").unwrap_err();
        assert_eq!(
            available,
            vec![
                "linux/amd64",
                "linux/arm/v6",
                "linux/arm/v7",
                "linux/arm64",
                "windows/amd64"
            ]
        );
        assert!(pick("linux/arm/v5").is_err());
    }

    #[test]
    fn parses_image_manifests() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{}","size":10}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":20}}]}}"#,
            digest('1'),
            digest('2')
        );
        let m = parse_manifest(json.as_bytes(), None, "x").unwrap();
        let Manifest::Image { config, layers } = m else {
            panic!("not an image")
        };
        assert_eq!(config.digest, digest('1'));
        assert_eq!(config.size, 10);
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].size, 20);
        // The content type wins over the body's mediaType when they disagree.
        let m = parse_manifest(
            index_json().as_bytes(),
            Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
            "x",
        )
        .unwrap();
        assert!(matches!(m, Manifest::Index { .. }));
    }

    #[test]
    fn refuses_what_it_cannot_pull() {
        let schema1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(matches!(
            parse_manifest(schema1, None, "x"),
            Err(RegistryError::UnsupportedManifest { .. })
        ));
        assert!(matches!(
            parse_manifest(b"not json", None, "x"),
            Err(RegistryError::BadManifest { .. })
        ));
        let bad_digest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"sha256:../../etc","size":1}},"layers":[]}}"#
        );
        assert!(matches!(
            parse_manifest(bad_digest.as_bytes(), None, "x"),
            Err(RegistryError::InvalidDigest { .. })
        ));
        let helm = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{}","size":1}},"layers":[]}}"#,
            digest('1')
        );
        assert!(matches!(
            parse_manifest(helm.as_bytes(), None, "x"),
            Err(RegistryError::NotAnImage { .. })
        ));
        let no_config =
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#);
        assert!(matches!(
            parse_manifest(no_config.as_bytes(), None, "x"),
            Err(RegistryError::InvalidManifest { .. })
        ));
    }

    #[test]
    fn layer_media_types() {
        let d = digest('1');
        let ok = [
            ("application/vnd.oci.image.layer.v1.tar", Compression::None),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar",
                Compression::None,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.zstd",
                Compression::Zstd,
            ),
        ];
        for (mt, c) in ok {
            assert_eq!(layer_compression(mt, &d).unwrap(), c, "{mt}");
        }
        for mt in [
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        ] {
            assert!(matches!(
                layer_compression(mt, &d),
                Err(RegistryError::ForeignLayer { .. })
            ));
        }
        for mt in [
            "",
            "application/octet-stream",
            "application/vnd.oci.image.layer.v1.tar+bzip2",
        ] {
            assert!(matches!(
                layer_compression(mt, &d),
                Err(RegistryError::UnsupportedLayer { .. })
            ));
        }
    }
}
