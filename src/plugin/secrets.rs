//! `secrets.get`: named secrets a plugin was granted. Only "aws" exists: credentials from
//! the AWS_* variables, else ~/.aws/credentials and ~/.aws/config (AWS_PROFILE, default
//! "default"; AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE move them), as the SDKs do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::bindings::burrow::plugin::secrets::{Error, Host};
use super::state::HostState;

impl Host for HostState {
    fn get(&mut self, name: String) -> Result<Vec<u8>, Error> {
        if !self.policy.secret_granted(&name) {
            return Err(Error::Denied(format!(
                "secret {name:?} was not granted to this plugin"
            )));
        }
        match name.as_str() {
            "aws" => {
                let home = std::env::var_os("HOME").map(PathBuf::from);
                aws(
                    &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
                    home.as_deref(),
                )
                .map(String::into_bytes)
            }
            _ => Err(Error::Unsupported(format!(
                "burrow has no secret named {name:?} (known: \"aws\")"
            ))),
        }
    }
}

/// The "aws" secret as the WIT describes it:
/// `{"access_key_id","secret_access_key","session_token"?,"region"?}`.
pub(crate) fn aws(
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<String, Error> {
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let file = |var: &str, name: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".aws").join(name)))
    };
    let read = |p: Option<PathBuf>| {
        p.and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| ini(&t))
            .unwrap_or_default()
    };
    let creds = read(file("AWS_SHARED_CREDENTIALS_FILE", "credentials"));
    let config = read(file("AWS_CONFIG_FILE", "config"));
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let from_files = |key: &str| {
        creds
            .get(&profile)
            .and_then(|s| s.get(key))
            .or_else(|| config.get(&config_section).and_then(|s| s.get(key)))
            .cloned()
    };

    let (id, secret, token) = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => (id, secret, env("AWS_SESSION_TOKEN")),
        _ => match (
            from_files("aws_access_key_id"),
            from_files("aws_secret_access_key"),
        ) {
            (Some(id), Some(secret)) => (id, secret, from_files("aws_session_token")),
            _ => {
                return Err(Error::Unavailable(format!(
                    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile {profile:?} to ~/.aws/credentials"
                )));
            }
        },
    };
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| {
            config
                .get(&config_section)
                .and_then(|s| s.get("region"))
                .cloned()
        });
    let mut obj = serde_json::Map::new();
    obj.insert("access_key_id".into(), id.into());
    obj.insert("secret_access_key".into(), secret.into());
    if let Some(t) = token {
        obj.insert("session_token".into(), t.into());
    }
    if let Some(r) = region {
        obj.insert("region".into(), r.into());
    }
    Ok(serde_json::Value::Object(obj).to_string())
}

/// Sections of an AWS ini file: `[name]`, `key = value`, `#`/`;` comments.
fn ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn environment_wins_over_files() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        let v: serde_json::Value = serde_json::from_str(&aws(&env, None).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"access_key_id": "AKID", "secret_access_key": "s3cr3t", "region": "eu-west-1"})
        );
    }

    #[test]
    fn profile_from_credentials_and_region_from_config() {
        let home = tempfile::tempdir().unwrap();
        let aws_dir = home.path().join(".aws");
        std::fs::create_dir(&aws_dir).unwrap();
        std::fs::write(
            aws_dir.join("credentials"),
            "[default]\naws_access_key_id = D\naws_secret_access_key = d\n\n[work]\naws_access_key_id = W\naws_secret_access_key = w\naws_session_token = T\n",
        )
        .unwrap();
        std::fs::write(
            aws_dir.join("config"),
            "[default]\nregion = us-east-1\n# c\n[profile work]\nregion = ap-south-1\n",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(
            &aws(&env_of(&[("AWS_PROFILE", "work")]), Some(home.path())).unwrap(),
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"access_key_id": "W", "secret_access_key": "w", "session_token": "T", "region": "ap-south-1"})
        );
        let v: serde_json::Value =
            serde_json::from_str(&aws(&env_of(&[]), Some(home.path())).unwrap()).unwrap();
        assert_eq!(v["access_key_id"], "D");
        assert_eq!(v["region"], "us-east-1");
        let err = aws(&env_of(&[("AWS_PROFILE", "nope")]), Some(home.path())).unwrap_err();
        assert!(matches!(err, Error::Unavailable(m) if m.contains("\"nope\"")));
    }
}
