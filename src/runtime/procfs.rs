//! The processes of a running container, read from /proc (for `top`).
//!
//! /proc/PID/stat, status and cmdline are world-readable. A container's processes are pid 1
//! and its descendants, plus what `exec` started: those are children of an `exec` helper in
//! burrow's pid namespace, so they are found by their pid namespace instead (readable for
//! the user who owns the container's user namespace).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{ProcessInfo, RuntimeError};

/// The fields of /proc/PID/stat that `top` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stat {
    comm: String,
    state: char,
    ppid: i32,
    cpu_ticks: u64,
    start_time: u64,
    rss_pages: u64,
}

/// Parses /proc/PID/stat. comm (field 2) may hold spaces and parentheses, so the other
/// fields are read after its last ')'.
fn parse_stat(content: &str) -> Option<Stat> {
    let open = content.find('(')?;
    let close = content.rfind(')')?;
    let comm = content.get(open + 1..close)?.to_string();
    // Fields from 3 (state) on; rest[i] is field i + 3.
    let rest: Vec<&str> = content.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    let num = |n: usize| field(n)?.parse::<u64>().ok();
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        cpu_ticks: num(14)? + num(15)?,
        start_time: num(22)?,
        rss_pages: num(24)?,
    })
}

fn read_stat(proc: &Path, pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?)
}

/// The real uid (first field of `Uid:`) and the pid in each nested pid namespace
/// (`NSpid:`, outermost first) from /proc/PID/status.
fn parse_status(content: &str) -> (Option<u32>, Vec<i32>) {
    let mut uid = None;
    let mut nspid = Vec::new();
    for line in content.lines() {
        if let Some(v) = line.strip_prefix("Uid:") {
            uid = v.split_whitespace().next().and_then(|u| u.parse().ok());
        } else if let Some(v) = line.strip_prefix("NSpid:") {
            nspid = v
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
        }
    }
    (uid, nspid)
}

/// `NSpid:` of /proc/PID/status; errors when the process is gone.
pub(crate) fn nspid(pid: i32) -> Result<Vec<i32>, RuntimeError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(parse_status(&s).1),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(RuntimeError::ContainerGone { pid })
        }
        Err(source) => Err(RuntimeError::ReadProc { path, source }),
    }
}

/// The process whose namespace files stand for the container whose pid 1 is `pid`: pid 1
/// itself, or, when its files cannot be opened (`--init`'s pid 1 is burrow code that made
/// itself non-dumpable, so /proc/1/ns, fd and environ are closed to everyone but the host's
/// root), the first of its descendants whose files can: they share every namespace with it.
pub fn namespace_anchor(pid: i32) -> Result<i32, RuntimeError> {
    anchor_under(Path::new("/proc"), pid)
}

fn anchor_under(proc: &Path, pid: i32) -> Result<i32, RuntimeError> {
    let open = |p: i32| std::fs::read_link(proc.join(p.to_string()).join("ns/user")).is_ok();
    let mut todo = std::collections::VecDeque::from([pid]);
    while let Some(p) = todo.pop_front() {
        if open(p) {
            return Ok(p);
        }
        let children = proc.join(format!("{p}/task/{p}/children"));
        let list = std::fs::read_to_string(&children).unwrap_or_default();
        todo.extend(
            list.split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok()),
        );
    }
    if proc.join(pid.to_string()).exists() {
        Err(RuntimeError::ReadProc {
            path: proc.join(format!("{pid}/ns/user")),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        })
    } else {
        Err(RuntimeError::ContainerGone { pid })
    }
}

fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// pid 1 and every descendant of it, given each process's parent.
fn descendants(root: i32, parents: &HashMap<i32, i32>) -> HashSet<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, &ppid) in parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut found = HashSet::from([root]);
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if found.insert(child) {
                todo.push(child);
            }
        }
    }
    found
}

/// The processes of the container whose pid 1 has host pid `pid`, pid 1 first then by pid.
pub fn container_processes(pid: i32) -> Result<Vec<ProcessInfo>, RuntimeError> {
    processes_under(Path::new("/proc"), pid)
}

fn processes_under(proc: &Path, root: i32) -> Result<Vec<ProcessInfo>, RuntimeError> {
    let root_stat = read_stat(proc, root).ok_or(RuntimeError::ContainerGone { pid: root })?;
    let pid_ns = |pid: i32| std::fs::read_link(proc.join(pid.to_string()).join("ns/pid")).ok();
    let root_ns = anchor_under(proc, root).ok().and_then(pid_ns);
    let entries = std::fs::read_dir(proc).map_err(|source| RuntimeError::ReadProc {
        path: proc.to_path_buf(),
        source,
    })?;
    let mut stats = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // A process that exits meanwhile is simply not listed.
        if let Some(stat) = read_stat(proc, pid) {
            stats.insert(pid, stat);
        }
    }
    stats.insert(root, root_stat);
    let parents = stats.iter().map(|(p, s)| (*p, s.ppid)).collect();
    let mut members = descendants(root, &parents);
    let others: Vec<i32> = stats
        .keys()
        .copied()
        .filter(|p| !members.contains(p))
        .collect();
    for pid in others {
        let status = std::fs::read_to_string(proc.join(pid.to_string()).join("status"));
        let (_, nspid) = parse_status(&status.unwrap_or_default());
        // Only a process in a nested pid namespace can be in the container's.
        if nspid.len() > 1 && root_ns.is_some() && pid_ns(pid) == root_ns {
            members.insert(pid);
        }
    }
    let mut list: Vec<ProcessInfo> = members
        .into_iter()
        .filter_map(|pid| {
            let stat = stats.remove(&pid)?;
            let dir = proc.join(pid.to_string());
            let (uid, _) = parse_status(&std::fs::read_to_string(dir.join("status")).ok()?);
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            Some(ProcessInfo {
                pid,
                ppid: stat.ppid,
                uid: uid?,
                start_time_ticks: stat.start_time,
                cmdline: parse_cmdline(&cmdline),
                comm: stat.comm,
                state: stat.state,
                rss_kb: stat.rss_pages * page_size_kb(),
                cpu_ticks: stat.cpu_ticks,
            })
        })
        .collect();
    list.sort_by_key(|p| (p.pid != root, p.pid));
    Ok(list)
}

fn page_size_kb() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4, |b| b as u64 / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_last_parenthesis() {
        let line = "4242 (a) b (c) S 17 4242 4242 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 \
                    123456 1000 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, "a) b (c");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 17);
        assert_eq!(s.cpu_ticks, 12);
        assert_eq!(s.start_time, 123456);
        assert_eq!(s.rss_pages, 321);
        assert_eq!(parse_stat("12 (x) S"), None);
    }

    #[test]
    fn status_gives_real_uid_and_nested_pids() {
        let s = "Name:\tsleep\nUid:\t1003\t1004\t1005\t1006\nNSpid:\t7632\t1\n";
        assert_eq!(parse_status(s), (Some(1003), vec![7632, 1]));
        assert_eq!(parse_cmdline(b"sleep\x0030\x00"), vec!["sleep", "30"]);
    }

    #[test]
    fn descendants_follow_parent_links_only_below_the_root() {
        let parents = HashMap::from([(10, 1), (11, 10), (12, 11), (13, 10), (20, 1), (21, 20)]);
        let mut got: Vec<i32> = descendants(10, &parents).into_iter().collect();
        got.sort();
        assert_eq!(got, vec![10, 11, 12, 13]);
    }

    #[test]
    fn real_proc_lists_a_child_and_its_start_time() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // spawn() returns once exec has begun; the new program's arguments are set up a moment
        // later, and until then its cmdline reads empty. Wait for them (readiness, not timing).
        let cmdline = format!("/proc/{}/cmdline", child.id());
        for _ in 0..10_000 {
            if !std::fs::read(&cmdline).unwrap().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let me = std::process::id() as i32;
        let list = container_processes(me).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(list[0].pid, me);
        let sleep = list
            .iter()
            .find(|p| p.pid == child.id() as i32)
            .expect("the child is listed");
        assert_eq!(sleep.ppid, me);
        assert_eq!(sleep.cmdline, vec!["sleep", "30"]);
        assert_eq!(sleep.uid, nix::unistd::getuid().as_raw());
        assert!(list[0].rss_kb > 0);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert_eq!(
            parse_stat(&own).unwrap().start_time,
            list[0].start_time_ticks
        );
        assert!(matches!(
            container_processes(i32::MAX),
            Err(RuntimeError::ContainerGone { .. })
        ));
    }
}
