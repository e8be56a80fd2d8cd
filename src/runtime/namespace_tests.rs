//! The order of the namespace steps, recorded through the syscall seam: C's (`process.rs`,
//! [`namespaces`]) then G's (`container.rs`, [`namespace_steps`]), as one container start
//! runs them.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::container::namespace_steps;
use super::mounts::MountOptions;
use super::process::{Stopped, namespaces};
use super::sys::tests::Recorder;
use super::{ContainerSpec, NetworkMode, Rootfs, RuntimeError};

fn spec(network: NetworkMode, userns: Option<PathBuf>) -> ContainerSpec {
    ContainerSpec {
        id: "c1".into(),
        rootfs: Rootfs::Overlay {
            lowers: vec!["/l/1".into()],
            upper: "/c/upper".into(),
            work: "/c/work".into(),
        },
        mount_point: "/run/c1/merged".into(),
        readonly_rootfs: false,
        args: vec!["sh".into()],
        env: vec![],
        cwd: "/".into(),
        user: None,
        hostname: "web".into(),
        network,
        userns,
        etc_files: vec![("/etc/hosts".into(), "/engine/hosts".into())],
        tty: false,
        stdin: false,
        init: false,
        tty_size: None,
        tty_size_file: None,
    }
}

const OPTS: MountOptions = MountOptions {
    private_net: true,
    tty_gid_mapped: true,
};

/// A descriptor standing for a cloned mount (the recorder never uses it).
fn fake_clone(_: &Path) -> std::io::Result<OwnedFd> {
    Ok(std::fs::File::open("/dev/null")?.into())
}

/// Runs C's steps then G's against `rec`, marking where the hooks ran.
fn start(rec: &Recorder, spec: &ContainerSpec) -> Result<(), Stopped> {
    let mark = |what: &str| rec.calls.borrow_mut().push(what.to_string());
    namespaces(
        rec,
        spec,
        || {
            mark("<parent writes the id maps>");
            Ok(())
        },
        || {
            mark("<credentials>");
            Ok(())
        },
    )?;
    namespace_steps(
        rec,
        spec,
        OPTS,
        fake_clone,
        || {
            mark("<in the rootfs>");
            Ok(())
        },
        |()| Ok(()),
    )?;
    Ok(())
}

/// The positions of `steps` in what `rec` recorded, checked to be increasing.
fn assert_in_order(rec: &Recorder, steps: &[&str]) {
    let positions: Vec<usize> = steps.iter().map(|s| rec.pos(s)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{positions:?} for {steps:#?}\n{:#?}",
        rec.lines()
    );
}

#[test]
fn user_namespace_first_then_mounts_then_the_other_namespaces_then_hostname() {
    let rec = Recorder::default();
    start(&rec, &spec(NetworkMode::None, None)).unwrap();
    let lines = rec.lines();
    assert_eq!(lines[0], "unshare CLONE_NEWUSER", "{lines:#?}");
    assert_in_order(
        &rec,
        &[
            "unshare CLONE_NEWUSER",
            "<parent writes the id maps>",
            "<credentials>",
            // C: the mount namespace before the rootfs is mounted in it...
            "unshare CLONE_NEWNS",
            "mount - / - MS_REC | MS_SLAVE",
            "mount overlay /run/c1/merged overlay",
            // ...and the other namespaces after it (fuse-overlayfs stays outside them).
            "unshare CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET",
            // G: a mount namespace of its own, then its mounts and pivot.
            "mount proc /run/c1/merged/proc proc",
            "pivot_root . .",
            "move_mount /etc/hosts",
            "<in the rootfs>",
            // The hostname in the uts namespace C made, then `lo` in its network namespace.
            "sethostname web",
            "loopback_up",
        ],
    );
    let unshares: Vec<&String> = lines.iter().filter(|l| l.starts_with("unshare")).collect();
    assert_eq!(
        unshares,
        [
            "unshare CLONE_NEWUSER",
            "unshare CLONE_NEWNS",
            "unshare CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET",
            "unshare CLONE_NEWNS",
        ]
    );
    // G's mount namespace comes after C's last namespace step, before any of G's mounts.
    let g_ns = lines
        .iter()
        .rposition(|l| l == "unshare CLONE_NEWNS")
        .unwrap();
    assert!(g_ns > rec.pos("unshare CLONE_NEWCGROUP") && g_ns < rec.pos("mount proc"));
    assert_eq!(lines.last().unwrap(), "loopback_up");
    assert!(!lines.iter().any(|l| l.starts_with("setns")));
}

#[test]
fn a_joined_user_and_network_namespace_are_entered_in_place_of_new_ones() {
    let rec = Recorder::default();
    let s = spec(
        NetworkMode::Joined("/dev/null".into()),
        Some("/dev/null".into()),
    );
    start(&rec, &s).unwrap();
    let lines = rec.lines();
    assert_eq!(lines[0], "setns CLONE_NEWUSER", "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l == "<parent writes the id maps>"),
        "the holder's user namespace is mapped already: {lines:#?}"
    );
    assert_in_order(
        &rec,
        &[
            "setns CLONE_NEWUSER",
            "<credentials>",
            "unshare CLONE_NEWNS",
            "mount overlay",
            "unshare CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID",
            // The other container's network, joined after the namespaces are made.
            "setns CLONE_NEWNET",
            "mount proc",
            "sethostname web",
        ],
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("NEWNET") && l.starts_with("unshare")),
        "{lines:#?}"
    );
}

#[test]
fn the_host_network_keeps_its_namespace_and_its_hostname() {
    let rec = Recorder::default();
    start(&rec, &spec(NetworkMode::Host, None)).unwrap();
    let lines = rec.lines();
    assert!(lines.contains(
        &"unshare CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID".to_string()
    ));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("NEWNET") || l.starts_with("sethostname") || l == "loopback_up"),
        "{lines:#?}"
    );
}

#[test]
fn a_failure_after_the_rootfs_mount_asks_for_its_release_and_stops() {
    // Before the rootfs is mounted: nothing to release, nothing mounted.
    let rec = Recorder {
        fail: vec!["unshare CLONE_NEWNS".into()],
        ..Default::default()
    };
    let stopped = start(&rec, &spec(NetworkMode::None, None)).unwrap_err();
    assert!(
        matches!(&stopped, Stopped::Failed { release: false, err: RuntimeError::Process { step, .. } } if step == "create a mount namespace"),
        "{stopped:?}"
    );
    assert!(!rec.lines().iter().any(|l| l.starts_with("mount")));

    // After it: released, and no namespace step follows.
    let rec = Recorder {
        fail: vec!["unshare CLONE_NEWCGROUP".into()],
        ..Default::default()
    };
    let stopped = start(&rec, &spec(NetworkMode::None, None)).unwrap_err();
    assert!(
        matches!(&stopped, Stopped::Failed { release: true, err } if err.to_string() == "cannot create the container's namespaces while starting the container process"),
        "{stopped:?}"
    );
    assert_eq!(
        rec.lines().last().unwrap(),
        "unshare CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET"
    );

    // A network namespace to join that is gone: released too, named in the error.
    let rec = Recorder::default();
    let gone = PathBuf::from("/proc/2147483647/ns/net");
    let s = spec(NetworkMode::Joined(gone.clone()), None);
    let stopped = start(&rec, &s).unwrap_err();
    assert!(
        matches!(&stopped, Stopped::Failed { release: true, err: RuntimeError::Process { step, .. } } if step == &format!("open {}", gone.display())),
        "{stopped:?}"
    );
}

#[test]
fn the_hostname_failure_names_the_hostname() {
    let rec = Recorder {
        fail: vec!["sethostname".into()],
        ..Default::default()
    };
    let Err(Stopped::Failed { err, .. }) = start(&rec, &spec(NetworkMode::None, None)) else {
        panic!(
            "sethostname failed but the start went on: {:#?}",
            rec.lines()
        );
    };
    assert_eq!(
        err.to_string(),
        "container setup failed: cannot set the hostname web"
    );
    assert!(!rec.lines().iter().any(|l| l == "loopback_up"));
}
