//! Each storage driver end to end: the container writes to its rootfs, the write stays out
//! of the image's layers, /proc/mounts shows the driver's file system, nothing is left
//! running, and `inspect` names the driver. Each driver gets its own HOME: the driver is
//! recorded in the data directory at first use.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Out, User, fixture};

/// Long enough for a slow machine, short enough that a hung container fails the test.
const TIMEOUT: Duration = Duration::from_secs(120);

struct Driver<'a> {
    user: &'a User,
    name: &'a str,
}

impl Driver<'_> {
    /// `burrow --storage-driver NAME ARGS…`, killed (with what it started) after TIMEOUT.
    fn burrow(&self, args: &[&str]) -> Out {
        let mut all = vec!["--storage-driver", self.name];
        all.extend_from_slice(args);
        let mut cmd = self.user.command(&all);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().unwrap();
        let pid = child.id() as i32;
        let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut out, mut err) = (String::new(), String::new());
            let _ = stdout.read_to_string(&mut out);
            let _ = stderr.read_to_string(&mut err);
            let _ = tx.send((out, err));
        });
        let (stdout, stderr) = match rx.recv_timeout(TIMEOUT) {
            Ok(output) => output,
            Err(_) => {
                // burrow and runuser share the group; the container processes die with
                // burrow, the fuse-overlayfs daemon (its command line names this test's
                // HOME) once killed.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
                let _ = Command::new("pkill")
                    .args(["-KILL", "-u", &self.user.name, "-f"])
                    .arg(format!("fuse-overlayfs .*{}/", self.user.home.display()))
                    .status();
                let _ = child.wait();
                panic!("burrow {args:?} with {} hung for {TIMEOUT:?}", self.name);
            }
        };
        let status = child.wait().unwrap();
        Out {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }

    /// fuse-overlayfs daemons of this test (matched on its HOME: tests run in parallel as
    /// the same user).
    fn daemons(&self) -> String {
        let o = Command::new("pgrep")
            .args(["-a", "-u", &self.user.name, "-f"])
            .arg(format!("fuse-overlayfs .*{}/", self.user.home.display()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// The file system type of the mount holding `path` on the host.
fn host_fstype(path: &std::path::Path) -> String {
    let o = Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE", "--target"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "findmnt {}: {o:?}", path.display());
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The whole check for one driver; `root_type` is the fstype /proc/mounts shows for `/`.
fn check(test: &str, name: &str, root_type: impl FnOnce(&User) -> String) {
    let user = User::new(test);
    let d = Driver { user: &user, name };
    let img = fixture("busybox");
    d.burrow(&["pull", "-q", "--tls-verify=false", &img]).ok();

    let o = d.burrow(&[
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        "echo hi > /f && cat /f && grep '^[^ ]* / ' /proc/mounts",
    ]);
    o.ok();
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next(), Some("hi"), "{o:#?}");
    let root: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        root.get(2).copied(),
        Some(root_type(&user).as_str()),
        "rootfs type with {name}: {o:#?}"
    );
    assert_eq!(d.daemons(), "", "fuse-overlayfs left running with {name}");

    // The write went to that container's layer only.
    d.burrow(&["run", "--rm", &img, "sh", "-c", "test ! -e /f"])
        .ok();

    // A kept container records its driver.
    d.burrow(&["run", "--name", "kept", &img, "touch", "/g"])
        .ok();
    let o = d.burrow(&["inspect", "--format", "{{.Driver}}", "kept"]);
    assert_eq!(o.ok().stdout, format!("{name}\n"));
    d.burrow(&["rm", "kept"]).ok();
    assert_eq!(d.daemons(), "", "fuse-overlayfs left running with {name}");
}

#[test]
fn overlay_driver() {
    check("driver_overlay", "overlay", |_| "overlay".into());
}

#[test]
fn fuse_overlayfs_driver() {
    check("driver_fuse", "fuse-overlayfs", |_| {
        "fuse.fuse-overlayfs".into()
    });
}

#[test]
fn vfs_driver() {
    // The container's directory bound as is: the type of the file system under HOME.
    check("driver_vfs", "vfs", |u| host_fstype(&u.home));
}

/// With the host's network the host's /sys is bound in; every mount below it must be
/// read-only too, not just the top.
#[test]
fn sys_is_read_only_throughout() {
    let user = User::new("driver_sys_ro");
    let img = user.pull("busybox");
    let o = user.burrow(&[
        "run",
        "--rm",
        "--network",
        "host",
        &img,
        "sh",
        "-c",
        "grep -E '^[^ ]+ /sys[/ ]' /proc/mounts",
    ]);
    o.ok();
    let mounts: Vec<&str> = o.stdout.lines().collect();
    assert!(mounts.len() > 1, "the host's /sys has submounts: {o:#?}");
    for m in &mounts {
        let opts = m.split_whitespace().nth(3).unwrap_or_default();
        assert!(
            opts.split(',').any(|o| o == "ro"),
            "{m} is writable: {o:#?}"
        );
    }
}
