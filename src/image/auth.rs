//! Registry credentials in Docker's `config.json` format:
//! `{"auths": {"127.0.0.1:5000": {"auth": "<base64 of user:pass>"}}}`.
//! Credential helpers (`credsStore`, `credHelpers`) are not run; such entries are ignored.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::image::reference::{DEFAULT_REGISTRY, normalize_registry};

/// The key Docker writes for Docker Hub; kept so files stay interchangeable with `docker`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot {action} credentials file {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("credentials file {path} is not valid JSON (fix or remove it)")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "credentials file {path} is not a JSON object with an \"auths\" object (fix or remove it)"
    )]
    Shape { path: PathBuf },
    #[error(
        "credentials for {registry} in {path} are malformed: \"auth\" must be base64 of user:password (log in again)"
    )]
    BadAuth { path: PathBuf, registry: String },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AuthError + 'a {
    move |source| AuthError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The credentials for `registry` from the first file that has some. Missing files are
/// skipped. `docker.io` also matches Docker's `https://index.docker.io/v1/` key.
pub fn lookup(files: &[PathBuf], registry: &str) -> Result<Option<(String, String)>, AuthError> {
    let wanted = normalize_registry(registry);
    for path in files {
        let Some(doc) = read_doc(path)? else {
            continue;
        };
        let Some(auths) = auths(&doc, path)? else {
            continue;
        };
        for (key, entry) in auths {
            if normalize_registry(key) != wanted {
                continue;
            }
            if let Some(creds) = decode_entry(entry, path, &wanted)? {
                tracing::debug!(?path, registry = %wanted, "using stored credentials");
                return Ok(Some(creds));
            }
        }
    }
    Ok(None)
}

/// Saves credentials for `registry`, keeping every other key in the file. Older entries for
/// the same registry under another spelling are replaced. The file is written 0600 through a
/// temporary file and a rename.
pub fn store(file: &Path, registry: &str, user: &str, pass: &str) -> Result<(), AuthError> {
    let registry = normalize_registry(registry);
    let mut doc = read_doc(file)?.unwrap_or_else(|| Value::Object(Map::new()));
    let obj = doc.as_object_mut().ok_or_else(|| AuthError::Shape {
        path: file.to_path_buf(),
    })?;
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| AuthError::Shape {
            path: file.to_path_buf(),
        })?;
    auths.retain(|k, _| normalize_registry(k) != registry);
    let key = if registry == DEFAULT_REGISTRY {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry
    };
    let mut entry = Map::new();
    entry.insert(
        "auth".into(),
        Value::String(BASE64.encode(format!("{user}:{pass}"))),
    );
    auths.insert(key, Value::Object(entry));
    write_doc(file, &doc)
}

/// Removes the credentials for `registry`; `false` when there were none.
pub fn remove(file: &Path, registry: &str) -> Result<bool, AuthError> {
    let registry = normalize_registry(registry);
    let Some(mut doc) = read_doc(file)? else {
        return Ok(false);
    };
    let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let before = auths.len();
    auths.retain(|k, _| normalize_registry(k) != registry);
    if auths.len() == before {
        return Ok(false);
    }
    write_doc(file, &doc)?;
    Ok(true)
}

fn read_doc(path: &Path) -> Result<Option<Value>, AuthError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| AuthError::Parse {
            path: path.to_path_buf(),
            source,
        })
}

fn auths<'a>(doc: &'a Value, path: &Path) -> Result<Option<&'a Map<String, Value>>, AuthError> {
    let shape = || AuthError::Shape {
        path: path.to_path_buf(),
    };
    let obj = doc.as_object().ok_or_else(shape)?;
    match obj.get("auths") {
        None => Ok(None),
        Some(v) => v.as_object().map(Some).ok_or_else(shape),
    }
}

fn decode_entry(
    entry: &Value,
    path: &Path,
    registry: &str,
) -> Result<Option<(String, String)>, AuthError> {
    let bad = || AuthError::BadAuth {
        path: path.to_path_buf(),
        registry: registry.to_string(),
    };
    if let Some(auth) = entry.get("auth").and_then(Value::as_str)
        && !auth.is_empty()
    {
        let raw = BASE64.decode(auth.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (user, pass) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some((user.to_string(), pass.to_string())));
    }
    let field = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match (field("username"), field("password")) {
        (Some(u), Some(p)) => Ok(Some((u.to_string(), p.to_string()))),
        _ => Ok(None),
    }
}

fn write_doc(path: &Path, doc: &Value) -> Result<(), AuthError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create directory for", path))?;
    let mut bytes = serde_json::to_vec_pretty(doc).expect("a JSON value always serialises");
    bytes.push(b'\n');
    crate::fsutil::write_atomic(path, &bytes, crate::fsutil::Atomic::PRIVATE).map_err(|e| {
        AuthError::Io {
            action: e.step,
            path: e.path,
            source: e.source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn store_lookup_remove() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/dir/auth.json");
        assert_eq!(
            lookup(std::slice::from_ref(&file), "127.0.0.1:5000").unwrap(),
            None
        );
        store(&file, "127.0.0.1:5000", "alice", "pa:ss").unwrap();
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            lookup(std::slice::from_ref(&file), "127.0.0.1:5000").unwrap(),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(
            lookup(std::slice::from_ref(&file), "127.0.0.1:5001").unwrap(),
            None
        );
        let doc: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            doc["auths"]["127.0.0.1:5000"]["auth"],
            BASE64.encode("alice:pa:ss")
        );
        assert!(remove(&file, "127.0.0.1:5000").unwrap());
        assert!(!remove(&file, "127.0.0.1:5000").unwrap());
        assert_eq!(
            lookup(std::slice::from_ref(&file), "127.0.0.1:5000").unwrap(),
            None
        );
        assert!(!remove(&dir.path().join("missing.json"), "x").unwrap());
        // Only the final file, no temporaries left over.
        assert_eq!(fs::read_dir(file.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn keeps_other_keys_and_replaces_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        fs::write(
            &file,
            r#"{"credsStore":"desktop","auths":{"index.docker.io":{"auth":"b2xkOm9sZA=="},"quay.io":{"auth":"cTpx"}},"HttpHeaders":{"X":"y"}}"#,
        )
        .unwrap();
        store(&file, "docker.io", "new", "pw").unwrap();
        let doc: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(doc["credsStore"], "desktop");
        assert_eq!(doc["HttpHeaders"]["X"], "y");
        assert_eq!(doc["auths"]["quay.io"]["auth"], "cTpx");
        assert!(doc["auths"].get("index.docker.io").is_none());
        assert_eq!(
            doc["auths"]["https://index.docker.io/v1/"]["auth"],
            BASE64.encode("new:pw")
        );
        for name in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                lookup(std::slice::from_ref(&file), name).unwrap(),
                Some(("new".into(), "pw".into())),
                "{name}"
            );
        }
        assert_eq!(
            lookup(std::slice::from_ref(&file), "quay.io").unwrap(),
            Some(("q".into(), "q".into()))
        );
    }

    #[test]
    fn first_file_with_a_match_wins() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.json");
        let missing = dir.path().join("missing.json");
        fs::write(&a, r#"{"auths":{"other:1":{"auth":"eDp5"}}}"#).unwrap();
        fs::write(
            &b,
            r#"{"auths":{"http://reg:5000/v2/":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let files = vec![missing, a.clone(), b];
        assert_eq!(
            lookup(&files, "reg:5000").unwrap(),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(
            lookup(&files, "other:1").unwrap(),
            Some(("x".into(), "y".into()))
        );
    }

    #[test]
    fn malformed_files_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        fs::write(&file, "{not json").unwrap();
        let err = lookup(std::slice::from_ref(&file), "x").unwrap_err();
        assert!(matches!(err, AuthError::Parse { .. }));
        assert!(err.to_string().contains(&file.display().to_string()));
        fs::write(&file, r#"{"auths":{"x":{"auth":"!!notbase64"}}}"#).unwrap();
        assert!(matches!(
            lookup(std::slice::from_ref(&file), "x").unwrap_err(),
            AuthError::BadAuth { .. }
        ));
        fs::write(&file, r#"{"auths":[]}"#).unwrap();
        assert!(matches!(
            store(&file, "x", "u", "p").unwrap_err(),
            AuthError::Shape { .. }
        ));
    }

    #[test]
    fn empty_auth_with_helper_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        fs::write(&file, r#"{"auths":{"x":{}},"credHelpers":{"x":"ecr"}}"#).unwrap();
        assert_eq!(lookup(std::slice::from_ref(&file), "x").unwrap(), None);
    }
}
