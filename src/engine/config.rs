//! Where burrow keeps its files, and the config file (`burrow.toml`).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Uid, User};
use serde::Deserialize;

use super::EngineError;

/// Settings read from `~/.config/burrow/burrow.toml`, else `/etc/burrow/burrow.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// "overlay", "fuse-overlayfs" or "vfs"; chosen automatically when absent.
    pub storage_driver: Option<String>,
    /// Registries (host[:port]) reached over plain http or unverified https.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    pub data_dir: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
    /// How rootless networks reach the outside: "libslirp" (the default), "slirp4netns" or
    /// "pasta".
    pub rootless_network_cmd: Option<crate::network::holder::Egress>,
}

/// The resolved locations and settings for this invocation.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data: PathBuf,
    pub runtime: PathBuf,
    /// Where `login` stores credentials (Docker's config.json format).
    pub auth_file: PathBuf,
    /// Credential files read, in order.
    pub auth_files: Vec<PathBuf>,
}

#[derive(Debug, Default, Clone)]
pub struct GlobalOptions {
    pub root: Option<PathBuf>,
    pub runroot: Option<PathBuf>,
    pub storage_driver: Option<String>,
    pub config: Option<PathBuf>,
}

pub fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    User::from_uid(Uid::current())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| PathBuf::from("/"))
}

pub fn load_file_config(opts: &GlobalOptions, home: &Path) -> Result<FileConfig, EngineError> {
    let candidates: Vec<PathBuf> = match &opts.config {
        Some(p) => vec![p.clone()],
        None => {
            let user_dir = std::env::var_os("XDG_CONFIG_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".config"));
            let mut v = Vec::new();
            if !Uid::current().is_root() {
                v.push(user_dir.join("burrow/burrow.toml"));
            }
            v.push(PathBuf::from("/etc/burrow/burrow.toml"));
            v
        }
    };
    for path in candidates {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return toml::from_str(&text).map_err(|source| EngineError::ConfigFile {
                    path,
                    source: Box::new(source),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.config.is_none() => {}
            Err(source) => {
                return Err(EngineError::Io {
                    what: "read",
                    path,
                    source,
                });
            }
        }
    }
    Ok(FileConfig::default())
}

impl Paths {
    pub fn resolve(opts: &GlobalOptions, file: &FileConfig) -> Result<Paths, EngineError> {
        let uid = Uid::current();
        let rootful = uid.is_root();
        let home = home_dir();
        let data = match opts.root.clone().or_else(|| file.data_dir.clone()) {
            Some(p) => p,
            None if rootful => PathBuf::from("/var/lib/burrow"),
            None => std::env::var_os("XDG_DATA_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".local/share"))
                .join("burrow"),
        };
        let runtime = match opts.runroot.clone().or_else(|| file.runtime_dir.clone()) {
            Some(p) => p,
            None if rootful => PathBuf::from("/run/burrow"),
            None => match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
                Some(dir) if Path::new(&dir).is_dir() => PathBuf::from(dir).join("burrow"),
                _ => PathBuf::from(format!("/tmp/burrow-{}", uid.as_raw())),
            },
        };
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".config"));
        let auth_file = config_home.join("burrow/auth.json");
        let auth_files = vec![auth_file.clone(), home.join(".docker/config.json")];
        Ok(Paths {
            data,
            runtime,
            auth_file,
            auth_files,
        })
    }

    /// Creates the data and runtime directories (0700) and checks that a shared location
    /// such as /tmp/burrow-UID really belongs to us.
    pub fn ensure(&self) -> Result<(), EngineError> {
        for dir in [&self.data, &self.runtime] {
            make_private_dir(dir)?;
        }
        for sub in ["containers", "layers", "blobs", "tmp"] {
            make_private_dir(&self.data.join(sub))?;
        }
        Ok(())
    }

    pub fn state_db(&self) -> PathBuf {
        self.data.join("state.db")
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.data.join("containers").join(id)
    }

    pub fn container_run_dir(&self, id: &str) -> PathBuf {
        self.runtime.join("containers").join(id)
    }
}

fn make_private_dir(dir: &Path) -> Result<(), EngineError> {
    let io = |source| EngineError::Io {
        what: "create",
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(io(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    let me = Uid::current().as_raw();
    if !meta.is_dir() || meta.uid() != me {
        return Err(EngineError::UnsafeDir {
            path: dir.to_path_buf(),
            owner: meta.uid(),
        });
    }
    if meta.permissions().mode() & 0o022 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_roots_win() {
        let opts = GlobalOptions {
            root: Some("/x/data".into()),
            runroot: Some("/x/run".into()),
            ..Default::default()
        };
        let p = Paths::resolve(&opts, &FileConfig::default()).unwrap();
        assert_eq!(p.data, PathBuf::from("/x/data"));
        assert_eq!(p.runtime, PathBuf::from("/x/run"));
        assert_eq!(p.state_db(), PathBuf::from("/x/data/state.db"));
    }

    #[test]
    fn private_dir_is_created_0700() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        make_private_dir(&d).unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn config_file_rejects_unknown_keys() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("burrow.toml");
        std::fs::write(&f, "storage_driver = \"vfs\"\nbogus = 1\n").unwrap();
        let opts = GlobalOptions {
            config: Some(f.clone()),
            ..Default::default()
        };
        let err = load_file_config(&opts, t.path()).unwrap_err();
        assert!(err.to_string().contains(&f.display().to_string()));
        std::fs::write(
            &f,
            "storage_driver = \"vfs\"\ninsecure_registries = [\"a:5000\"]\n",
        )
        .unwrap();
        let c = load_file_config(&opts, t.path()).unwrap();
        assert_eq!(c.storage_driver.as_deref(), Some("vfs"));
        assert_eq!(c.insecure_registries, vec!["a:5000"]);
    }
}
