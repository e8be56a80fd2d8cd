//! From options, container and the "aws" secret to a signed client and a stream config.

use serde::Deserialize;

use crate::api::Client;
use crate::options::{Endpoint, Options, REGION};
use crate::shipper::StreamConfig;
use crate::sigv4::Credentials;

/// The JSON the host's `secrets::get("aws")` returns.
#[derive(Deserialize)]
struct AwsSecret {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the \"aws\" secret is not JSON with access_key_id and secret_access_key")]
    BadSecret(#[source] serde_json::Error),
    #[error(
        "the \"aws\" secret has an empty access_key_id or secret_access_key (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials)"
    )]
    EmptyCredentials,
    /// dockerd: "cannot determine region for awslogs driver: <why IMDS failed>".
    #[error(
        "cannot determine region for awslogs driver: set the {REGION} log option, AWS_REGION, or a region in ~/.aws/config"
    )]
    NoRegion,
}

/// The container facts the driver uses.
#[derive(Debug, Clone, Copy)]
pub struct ContainerRef<'a> {
    pub id: &'a str,
    /// The `tag` option as the host rendered it.
    pub tag: Option<&'a str>,
}

/// The stream is `awslogs-stream`, else the rendered `tag`, else the full container id
/// (moby: `ParseLogTag(info, "{{.FullID}}")`, then the option wins).
pub fn stream_name(opts: &Options, c: ContainerRef<'_>) -> String {
    opts.stream
        .clone()
        .or_else(|| c.tag.filter(|t| !t.is_empty()).map(str::to_string))
        .unwrap_or_else(|| c.id.to_string())
}

pub fn resolve(
    opts: Options,
    c: ContainerRef<'_>,
    secret: &[u8],
) -> Result<(Client, StreamConfig), SetupError> {
    let s: AwsSecret = serde_json::from_slice(secret).map_err(SetupError::BadSecret)?;
    if s.access_key_id.is_empty() || s.secret_access_key.is_empty() {
        return Err(SetupError::EmptyCredentials);
    }
    let region = opts
        .region
        .clone()
        .or(s.region.filter(|r| !r.is_empty()))
        .ok_or(SetupError::NoRegion)?;
    let endpoint = opts
        .endpoint
        .clone()
        .unwrap_or_else(|| Endpoint::for_region(&region));
    let stream = stream_name(&opts, c);
    let client = Client {
        endpoint,
        region,
        creds: Credentials {
            access_key_id: s.access_key_id,
            secret_access_key: s.secret_access_key,
            session_token: s.session_token.filter(|t| !t.is_empty()),
        },
        format: opts.format.clone(),
    };
    let cfg = StreamConfig {
        group: opts.group,
        stream,
        create_group: opts.create_group,
        create_stream: opts.create_stream,
        multiline: opts.multiline,
        flush_interval: opts.flush_interval,
    };
    Ok((client, cfg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::parse;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const SECRET: &[u8] =
        br#"{"access_key_id":"AK","secret_access_key":"SK","region":"eu-west-1"}"#;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        let kv: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&kv).unwrap()
    }

    fn c(tag: Option<&str>) -> ContainerRef<'_> {
        ContainerRef { id: ID, tag }
    }

    #[test]
    fn stream_defaults_to_the_full_id_then_tag_then_option() {
        assert_eq!(stream_name(&opts(&[("awslogs-group", "g")]), c(None)), ID);
        assert_eq!(
            stream_name(
                &opts(&[("awslogs-group", "g"), ("tag", "x")]),
                c(Some("web/1"))
            ),
            "web/1"
        );
        let o = opts(&[("awslogs-group", "g"), ("awslogs-stream", "mine")]);
        assert_eq!(stream_name(&o, c(Some("web/1"))), "mine");
    }

    #[test]
    fn region_from_the_option_then_the_secret() {
        let (client, cfg) = resolve(opts(&[("awslogs-group", "g")]), c(None), SECRET).unwrap();
        assert_eq!(client.region, "eu-west-1");
        assert_eq!(
            client.endpoint.url(),
            "https://logs.eu-west-1.amazonaws.com/"
        );
        assert_eq!((cfg.group.as_str(), cfg.stream.as_str()), ("g", ID));
        let (client, _) = resolve(
            opts(&[
                ("awslogs-group", "g"),
                ("awslogs-region", "us-west-2"),
                ("awslogs-endpoint", "http://127.0.0.1:5001"),
            ]),
            c(None),
            SECRET,
        )
        .unwrap();
        assert_eq!(client.region, "us-west-2");
        assert_eq!(client.endpoint.url(), "http://127.0.0.1:5001/");
        assert!(client.creds.session_token.is_none());
    }

    #[test]
    fn refuses_a_missing_region_or_bad_secret() {
        let no_region = br#"{"access_key_id":"AK","secret_access_key":"SK","session_token":"T"}"#;
        let err = resolve(opts(&[("awslogs-group", "g")]), c(None), no_region).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot determine region for awslogs driver"),
            "{err}"
        );
        assert!(matches!(
            resolve(opts(&[("awslogs-group", "g")]), c(None), b"nope"),
            Err(SetupError::BadSecret(_))
        ));
        let empty = br#"{"access_key_id":"","secret_access_key":"SK","region":"r"}"#;
        assert!(matches!(
            resolve(opts(&[("awslogs-group", "g")]), c(None), empty),
            Err(SetupError::EmptyCredentials)
        ));
        let (client, _) = resolve(
            opts(&[("awslogs-group", "g"), ("awslogs-region", "r")]),
            c(None),
            no_region,
        )
        .unwrap();
        assert_eq!(client.creds.session_token.as_deref(), Some("T"));
    }
}
