//! Finding the command in the container's PATH and turning execve failures into the errors
//! Docker reports (127 not found, 126 cannot execute).

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::RuntimeError;

/// Docker's PATH when the image sets none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The value of `key` in `KEY=VALUE` entries (the last one wins, like a shell's export).
pub(crate) fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
}

/// Like Go's `exec.LookPath` (what Docker uses): a name with '/' is used as is; otherwise the
/// first regular file with an execute bit in a PATH dir (an empty entry means ".").
pub(crate) fn find_in_path(command: &str, path_env: Option<&str>) -> Result<PathBuf, RuntimeError> {
    if command.contains('/') {
        return Ok(PathBuf::from(command));
    }
    if command.is_empty() {
        return Err(RuntimeError::CommandNotFound {
            command: command.to_string(),
        });
    }
    let path_env = path_env.unwrap_or(DEFAULT_PATH);
    path_env
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(command))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| RuntimeError::CommandNotFound {
            command: command.to_string(),
        })
}

/// Maps an execve errno to the error Docker reports for `command`.
pub(crate) fn exec_error(command: &str, errno: i32) -> RuntimeError {
    let source = std::io::Error::from_raw_os_error(errno);
    let command = command.to_string();
    match errno {
        libc::ENOENT => RuntimeError::CommandNotFound { command },
        libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::EPERM | libc::ETXTBSY => {
            RuntimeError::CannotExecute { command, source }
        }
        _ => RuntimeError::ExecFailed { command, source },
    }
}

/// Everything execve needs, converted before the point of no return so a NUL byte in an
/// argument is reported instead of panicking.
pub(crate) struct Prepared {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

pub(crate) fn prepare(
    path: &Path,
    args: &[String],
    env: &[String],
) -> Result<Prepared, RuntimeError> {
    use std::os::unix::ffi::OsStrExt;
    let bad = |what: &str| RuntimeError::Setup {
        step: format!("pass the {what} containing a NUL byte for"),
        path: path.to_path_buf(),
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    };
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| bad("path"))?;
    let argv = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| bad("arguments"))?;
    let envp = env
        .iter()
        .map(|e| CString::new(e.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| bad("environment"))?;
    Ok(Prepared {
        path: cpath,
        argv,
        envp,
    })
}

/// execve; only returns on failure, with the errno mapped.
pub(crate) fn exec(p: &Prepared, command: &str) -> RuntimeError {
    if std::fs::metadata(Path::new(p.path.to_str().unwrap_or("/"))).is_ok_and(|m| m.is_dir()) {
        return exec_error(command, libc::EISDIR);
    }
    match nix::unistd::execve(&p.path, &p.argv, &p.envp) {
        Err(errno) => exec_error(command, errno as i32),
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_executable_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
        }
        // Not executable in a, a directory named tool in b/sub, executable in b.
        std::fs::write(a.join("tool"), "").unwrap();
        std::fs::create_dir(a.join("dir")).unwrap();
        std::fs::write(b.join("tool"), "").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", a.display(), b.display());
        assert_eq!(find_in_path("tool", Some(&path)).unwrap(), b.join("tool"));
        let err = find_in_path("dir", Some(&path)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec: \"dir\": executable file not found in $PATH"
        );
        assert_eq!(err.exit_code(), 127);
        assert_eq!(
            find_in_path("./x/y", Some(&path)).unwrap(),
            PathBuf::from("./x/y")
        );
        assert!(find_in_path("", Some(&path)).is_err());
    }

    #[test]
    fn reads_path_from_env_and_maps_errnos() {
        let env = vec![
            "PATH=/a".to_string(),
            "PATHX=1".to_string(),
            "PATH=/b".to_string(),
        ];
        assert_eq!(env_get(&env, "PATH"), Some("/b"));
        assert_eq!(env_get(&env, "HOME"), None);
        assert_eq!(exec_error("x", libc::ENOENT).exit_code(), 127);
        assert_eq!(exec_error("x", libc::EACCES).exit_code(), 126);
        assert_eq!(exec_error("x", libc::ENOEXEC).exit_code(), 126);
        assert_eq!(exec_error("x", libc::E2BIG).exit_code(), 125);
    }
}
