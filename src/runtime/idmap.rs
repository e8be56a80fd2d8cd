//! Building the id maps for the current user (/etc/subuid, /etc/subgid) and writing them
//! into a child's user namespace (newuidmap/newgidmap, or /proc/PID/{uid,gid}_map).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{IdMap, IdMapping, RuntimeError};

const SUBUID: &str = "/etc/subuid";
const SUBGID: &str = "/etc/subgid";

/// One `owner:start:count` line of /etc/subuid or /etc/subgid that belongs to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubRange {
    pub start: u32,
    pub count: u32,
}

/// The ranges in `content` owned by `name` or by the numeric `uid` (shadow-utils accepts
/// both). Blank lines, comments and malformed lines are skipped.
pub(crate) fn parse_subids(content: &str, name: &str, uid: u32) -> Vec<SubRange> {
    let uid = uid.to_string();
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let mut parts = line.split(':');
            let owner = parts.next()?;
            let start = parts.next()?.trim().parse::<u32>().ok()?;
            let count = parts.next()?.trim().parse::<u32>().ok()?;
            if parts.next().is_some() || count == 0 || (owner != name && owner != uid) {
                return None;
            }
            start.checked_add(count - 1)?;
            Some(SubRange { start, count })
        })
        .collect()
}

/// Container id 0 is the user's own id; container ids 1.. are the subordinate ranges in order.
pub(crate) fn build_maps(own: u32, ranges: &[SubRange]) -> Vec<IdMap> {
    let mut maps = vec![IdMap {
        container_id: 0,
        host_id: own,
        size: 1,
    }];
    let mut next = 1u32;
    for r in ranges {
        // The user's own id inside a subordinate range would be mapped twice; the kernel
        // refuses overlapping maps, so leave such a range out.
        if own >= r.start && own - r.start < r.count {
            continue;
        }
        let Some(end) = next.checked_add(r.count) else {
            break;
        };
        maps.push(IdMap {
            container_id: next,
            host_id: r.start,
            size: r.count,
        });
        next = end;
    }
    maps
}

fn read_subids(path: &Path) -> Result<String, RuntimeError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(RuntimeError::ReadSubids {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Finds program `name` in the directories of $PATH, then the usual bin and sbin dirs (a
/// cron job's PATH may lack them).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

impl IdMapping {
    /// Root: the identity map over all ids. Other users: id 0 is their own id and 1.. their
    /// subordinate ranges (needs newuidmap/newgidmap). Without ranges or helpers only the own
    /// id is mapped, and the returned string warns about it.
    pub fn for_current_user() -> Result<(IdMapping, Option<String>), RuntimeError> {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        if uid == 0 {
            let all = vec![IdMap {
                container_id: 0,
                host_id: 0,
                size: u32::MAX,
            }];
            return Ok((
                IdMapping {
                    uids: all.clone(),
                    gids: all,
                    needs_helpers: false,
                },
                None,
            ));
        }
        let name = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(u)) => u.name,
            Ok(None) => uid.to_string(),
            Err(e) => {
                return Err(RuntimeError::CurrentUser {
                    uid,
                    source: e.into(),
                });
            }
        };
        let subuids = parse_subids(&read_subids(Path::new(SUBUID))?, &name, uid);
        let subgids = parse_subids(&read_subids(Path::new(SUBGID))?, &name, uid);
        Ok(Self::choose(
            uid,
            gid,
            &name,
            &subuids,
            &subgids,
            find_program,
        ))
    }

    fn choose(
        uid: u32,
        gid: u32,
        name: &str,
        subuids: &[SubRange],
        subgids: &[SubRange],
        find: impl Fn(&str) -> Option<PathBuf>,
    ) -> (IdMapping, Option<String>) {
        let warning = if subuids.is_empty() {
            Some(format!(
                "cannot map user ids: no entry for \"{name}\" in {SUBUID} (add a range with usermod --add-subuids 100000-165535 {name}; until then only your own uid is mapped)"
            ))
        } else if subgids.is_empty() {
            Some(format!(
                "cannot map user ids: no entry for \"{name}\" in {SUBGID} (add a range with usermod --add-subgids 100000-165535 {name}; until then only your own uid is mapped)"
            ))
        } else if find("newuidmap").is_none() || find("newgidmap").is_none() {
            Some(
                "cannot map user ids: newuidmap/newgidmap not found (install the uidmap package; until then only your own uid is mapped)"
                    .to_string(),
            )
        } else {
            None
        };
        let mapping = if warning.is_some() {
            IdMapping {
                uids: build_maps(uid, &[]),
                gids: build_maps(gid, &[]),
                needs_helpers: false,
            }
        } else {
            IdMapping {
                uids: build_maps(uid, subuids),
                gids: build_maps(gid, subgids),
                needs_helpers: true,
            }
        };
        (mapping, warning)
    }

    /// True when only one uid is mapped (no subordinate ranges).
    pub fn single(&self) -> bool {
        self.uids.iter().map(|m| u64::from(m.size)).sum::<u64>() <= 1
    }

    /// Whether the process in the namespace may call setgroups(2): only when the maps were
    /// written by a privileged writer (helpers or real root); otherwise setgroups is denied.
    /// Evaluate it outside the namespace (inside, everyone looks like root).
    pub(crate) fn setgroups_allowed(&self) -> bool {
        self.needs_helpers || nix::unistd::geteuid().is_root()
    }

    /// Whether container uid `uid` and gid `gid` both have a host id.
    pub(crate) fn maps_user(&self, uid: u32, gid: u32) -> bool {
        let has = |maps: &[IdMap], id: u32| {
            maps.iter()
                .any(|m| id >= m.container_id && id - m.container_id < m.size)
        };
        has(&self.uids, uid) && has(&self.gids, gid)
    }

    /// The `container_id host_id size` lines of a map file.
    fn map_file(maps: &[IdMap]) -> String {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect()
    }

    /// Writes the maps of the user namespace `pid` just unshared.
    pub(crate) fn apply(&self, pid: i32) -> Result<(), RuntimeError> {
        if self.needs_helpers {
            run_helper("newuidmap", pid, &self.uids)?;
            run_helper("newgidmap", pid, &self.gids)?;
            return Ok(());
        }
        let proc = PathBuf::from(format!("/proc/{pid}"));
        write_proc(&proc.join("uid_map"), &Self::map_file(&self.uids))?;
        if !nix::unistd::geteuid().is_root() {
            // An unprivileged writer may only map its gid once setgroups is denied.
            write_proc(&proc.join("setgroups"), "deny")?;
        }
        write_proc(&proc.join("gid_map"), &Self::map_file(&self.gids))
    }
}

fn write_proc(path: &Path, content: &str) -> Result<(), RuntimeError> {
    // Map files must be written in one write(2) and cannot be replaced: no temp + rename.
    std::fs::write(path, content).map_err(|source| RuntimeError::WriteIdMap {
        path: path.to_path_buf(),
        source,
    })
}

fn run_helper(helper: &'static str, pid: i32, maps: &[IdMap]) -> Result<(), RuntimeError> {
    let mut cmd = Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id.to_string(),
            m.host_id.to_string(),
            m.size.to_string(),
        ]);
    }
    let out = cmd.output().map_err(|source| RuntimeError::HelperSpawn {
        helper,
        pid,
        source,
    })?;
    if !out.status.success() {
        return Err(RuntimeError::HelperFailed {
            helper,
            pid,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    tracing::debug!(helper, pid, "id map written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment\n\
        alice:100000:65536\n\
        bob:165536:65536\n\
        1001:231072:1000\n\
        alice:300000:10\n\
        broken line\n\
        alice:notanumber:5\n\
        alice:5:0\n\
        alice:4294967295:2\n\
        alice:1:2:3\n";

    #[test]
    fn parses_ranges_by_name_and_uid_in_order() {
        let r = parse_subids(FILE, "alice", 1001);
        assert_eq!(
            r,
            vec![
                SubRange {
                    start: 100000,
                    count: 65536
                },
                SubRange {
                    start: 231072,
                    count: 1000
                },
                SubRange {
                    start: 300000,
                    count: 10
                },
            ]
        );
        assert_eq!(
            parse_subids(FILE, "bob", 5000),
            vec![SubRange {
                start: 165536,
                count: 65536
            }]
        );
        assert!(parse_subids(FILE, "carol", 7).is_empty());
    }

    #[test]
    fn maps_own_id_to_root_then_ranges() {
        let maps = build_maps(
            1000,
            &[
                SubRange {
                    start: 100000,
                    count: 65536,
                },
                SubRange {
                    start: 300000,
                    count: 10,
                },
            ],
        );
        assert_eq!(
            maps,
            vec![
                IdMap {
                    container_id: 0,
                    host_id: 1000,
                    size: 1
                },
                IdMap {
                    container_id: 1,
                    host_id: 100000,
                    size: 65536
                },
                IdMap {
                    container_id: 65537,
                    host_id: 300000,
                    size: 10
                },
            ]
        );
        assert_eq!(
            IdMapping::map_file(&maps[..2]),
            "0 1000 1\n1 100000 65536\n"
        );
    }

    #[test]
    fn skips_a_range_holding_the_own_id() {
        let maps = build_maps(
            100005,
            &[SubRange {
                start: 100000,
                count: 10,
            }],
        );
        assert_eq!(
            maps,
            vec![IdMap {
                container_id: 0,
                host_id: 100005,
                size: 1
            }]
        );
    }

    #[test]
    fn falls_back_to_single_map_with_warning() {
        let range = [SubRange {
            start: 100000,
            count: 65536,
        }];
        let helpers = |n: &str| Some(PathBuf::from("/usr/bin").join(n));
        let (m, w) = IdMapping::choose(1000, 1000, "alice", &[], &range, helpers);
        assert!(m.single() && !m.needs_helpers);
        assert!(m.maps_user(0, 0) && !m.maps_user(1000, 0) && !m.maps_user(0, 1000));
        assert_eq!(
            w.unwrap(),
            "cannot map user ids: no entry for \"alice\" in /etc/subuid (add a range with usermod --add-subuids 100000-165535 alice; until then only your own uid is mapped)"
        );
        let (m, w) = IdMapping::choose(1000, 1000, "alice", &range, &range, |_| None);
        assert!(m.single());
        assert!(w.unwrap().contains("newuidmap"));
        let (m, w) = IdMapping::choose(1000, 1001, "alice", &range, &range, helpers);
        assert!(w.is_none() && m.needs_helpers && !m.single());
        assert!(m.maps_user(65536, 65536) && !m.maps_user(65537, 0));
        assert_eq!(
            m.gids[0],
            IdMap {
                container_id: 0,
                host_id: 1001,
                size: 1
            }
        );
    }
}
