//! Resolving Docker's `-u user[:group]` against the container's /etc/passwd and /etc/group
//! (the same rules as runc's `GetExecUser`).

use std::path::Path;

use super::RuntimeError;

/// Who the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (from /etc/group membership when no group was named).
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(content: &str) -> Vec<PasswdEntry> {
    content
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

fn parse_group(content: &str) -> Vec<GroupEntry> {
    content
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// A missing database is treated as empty (numeric ids still work), as runc does.
fn read_db(path: &Path) -> Result<String, RuntimeError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(RuntimeError::ReadUserDb {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`; None = root) with the given
/// passwd and group files.
pub(crate) fn resolve(
    spec: Option<&str>,
    passwd: &Path,
    group: &Path,
) -> Result<ExecUser, RuntimeError> {
    let spec = spec.unwrap_or("").trim();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if group_part == Some("") {
        return Err(RuntimeError::InvalidUser {
            user: spec.to_string(),
            reason: "empty group after ':'".to_string(),
        });
    }
    let users = parse_passwd(&read_db(passwd)?);
    let numeric = user_part.parse::<u32>().ok();
    let entry = if user_part.is_empty() {
        users.iter().find(|u| u.uid == 0)
    } else {
        users
            .iter()
            .find(|u| u.name == user_part || Some(u.uid) == numeric)
    };
    let (uid, mut gid, home, name) = match (entry, numeric) {
        (Some(e), _) => (e.uid, e.gid, e.home.clone(), Some(e.name.as_str())),
        (None, Some(uid)) => (uid, 0, "/".to_string(), None),
        (None, None) if user_part.is_empty() => (0, 0, "/".to_string(), None),
        (None, None) => {
            return Err(RuntimeError::UserNotFound {
                user: user_part.to_string(),
            });
        }
    };
    let need_groups = group_part.is_some() || name.is_some();
    let groups_db = if need_groups {
        parse_group(&read_db(group)?)
    } else {
        Vec::new()
    };
    let mut groups = Vec::new();
    match group_part {
        Some(g) => {
            let num = g.parse::<u32>().ok();
            gid = match groups_db.iter().find(|e| e.name == g || Some(e.gid) == num) {
                Some(e) => e.gid,
                None => num.ok_or_else(|| RuntimeError::GroupNotFound {
                    group: g.to_string(),
                })?,
            };
        }
        None => {
            if let Some(name) = name {
                groups = groups_db
                    .iter()
                    .filter(|e| e.members.iter().any(|m| m == name))
                    .map(|e| e.gid)
                    .collect();
            }
        }
    }
    if !groups.contains(&gid) {
        groups.insert(0, gid);
    }
    groups.dedup();
    let home = if home.is_empty() {
        "/".to_string()
    } else {
        home
    };
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Db {
        _dir: tempfile::TempDir,
        passwd: std::path::PathBuf,
        group: std::path::PathBuf,
    }

    fn db() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let group = dir.path().join("group");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            &group,
            "root:x:0:\napp:x:1000:\nextra:x:2000:nobody,app\nother:x:3000:nobody\n",
        )
        .unwrap();
        Db {
            _dir: dir,
            passwd,
            group,
        }
    }

    fn res(d: &Db, s: Option<&str>) -> Result<ExecUser, RuntimeError> {
        resolve(s, &d.passwd, &d.group)
    }

    #[test]
    fn resolves_names_and_ids() {
        let d = db();
        assert_eq!(
            res(&d, None).unwrap(),
            ExecUser {
                uid: 0,
                gid: 0,
                groups: vec![0],
                home: "/root".into()
            }
        );
        let app = ExecUser {
            uid: 1000,
            gid: 1000,
            groups: vec![1000, 2000],
            home: "/home/app".into(),
        };
        assert_eq!(res(&d, Some("app")).unwrap(), app);
        assert_eq!(res(&d, Some("1000")).unwrap(), app);
        let unknown = res(&d, Some("4242")).unwrap();
        assert_eq!(
            unknown,
            ExecUser {
                uid: 4242,
                gid: 0,
                groups: vec![0],
                home: "/".into()
            }
        );
    }

    #[test]
    fn explicit_group_replaces_membership() {
        let d = db();
        let u = res(&d, Some("app:other")).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (1000, 3000, vec![3000]));
        let u = res(&d, Some("1000:77")).unwrap();
        assert_eq!((u.gid, u.groups), (77, vec![77]));
    }

    #[test]
    fn unknown_names_are_errors_with_docker_messages() {
        let d = db();
        let e = res(&d, Some("foo")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user foo: no matching entries in passwd file"
        );
        assert_eq!(e.exit_code(), 125);
        let e = res(&d, Some("app:nogroup")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
        assert!(matches!(
            res(&d, Some("app:")),
            Err(RuntimeError::InvalidUser { .. })
        ));
    }

    #[test]
    fn missing_databases_allow_numeric_ids_only() {
        let dir = tempfile::tempdir().unwrap();
        let (p, g) = (dir.path().join("passwd"), dir.path().join("group"));
        assert_eq!(resolve(Some("5:6"), &p, &g).unwrap().groups, vec![6]);
        assert_eq!(resolve(None, &p, &g).unwrap().home, "/");
        assert!(matches!(
            resolve(Some("app"), &p, &g),
            Err(RuntimeError::UserNotFound { .. })
        ));
    }
}
