//! The mount sequence, recorded through the syscall seam.

use super::*;
use crate::runtime::NetworkMode;
use crate::runtime::sys::tests::Recorder;

fn spec(rootfs: Rootfs, readonly: bool) -> ContainerSpec {
    ContainerSpec {
        id: "c1".into(),
        rootfs,
        mount_point: "/run/c1/merged".into(),
        readonly_rootfs: readonly,
        args: vec!["sh".into()],
        env: vec![],
        cwd: "/".into(),
        user: None,
        hostname: "c1".into(),
        network: NetworkMode::None,
        userns: None,
        etc_files: vec![],
        tty: false,
        stdin: false,
        init: false,
        tty_size: None,
        tty_size_file: None,
    }
}

fn overlay() -> Rootfs {
    Rootfs::Overlay {
        lowers: vec!["/l/2".into(), "/l/1".into()],
        upper: "/c/upper".into(),
        work: "/c/work".into(),
    }
}

const OPTS: MountOptions = MountOptions {
    private_net: true,
    tty_gid_mapped: true,
};

/// What the two processes run, in order: [`mount_root`] then [`setup`].
fn all(
    rec: &Recorder,
    spec: &ContainerSpec,
    opts: MountOptions,
    files: &[(String, OwnedFd)],
    hook: impl FnOnce() -> Result<(), RuntimeError>,
) -> Result<(), RuntimeError> {
    mount_root(rec, spec)?;
    setup(rec, spec, opts, files, hook)
}

#[test]
fn mounts_in_order_and_pivots_before_masking() {
    let mut rec = Recorder::default();
    rec.kinds.insert("/proc/kcore".into(), Kind::File);
    rec.kinds.insert("/sys/firmware".into(), Kind::Dir);
    rec.kinds.insert("/proc/sys".into(), Kind::Dir);
    rec.kinds.insert("/etc/hosts".into(), Kind::File);
    let fd = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let files = vec![
        ("/etc/hosts".to_string(), fd()),
        ("/etc/resolv.conf".to_string(), fd()),
    ];
    let hook_ran = std::cell::Cell::new(None);
    all(&rec, &spec(overlay(), true), OPTS, &files, || {
        hook_ran.set(Some(rec.lines().len()));
        Ok(())
    })
    .unwrap();
    let lines = rec.lines();
    assert_eq!(lines[0], "mount - / - MS_REC | MS_SLAVE -");
    assert_eq!(
        lines[1],
        "mount overlay /run/c1/merged overlay - lowerdir=/l/2:/l/1,upperdir=/c/upper,workdir=/c/work,userxattr"
    );
    let order = [
        "mount proc /run/c1/merged/proc proc",
        "mount tmpfs /run/c1/merged/dev tmpfs",
        "mount /dev/null /run/c1/merged/dev/null",
        "mount devpts /run/c1/merged/dev/pts devpts MS_NOSUID | MS_NOEXEC newinstance,ptmxmode=0666,mode=0620,gid=5",
        "mount shm /run/c1/merged/dev/shm",
        "symlink /run/c1/merged/dev/ptmx pts/ptmx",
        "mount sysfs /run/c1/merged/sys sysfs",
        "chdir /run/c1/merged",
        "pivot_root . .",
        "umount2 . MNT_DETACH",
        "chdir /",
        "move_mount /etc/hosts",
        "touch /etc/resolv.conf",
        "move_mount /etc/resolv.conf",
        "mount /dev/null /proc/kcore - MS_BIND",
        "mount tmpfs /sys/firmware tmpfs MS_RDONLY",
        "mount /proc/sys /proc/sys - MS_BIND | MS_REC",
        "mount - /proc/sys - MS_RDONLY | MS_NOSUID | MS_NODEV | MS_REMOUNT | MS_BIND",
        "mount - / - MS_RDONLY | MS_NOSUID | MS_NODEV | MS_REMOUNT | MS_BIND",
    ];
    let positions: Vec<usize> = order.iter().map(|p| rec.pos(p)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{positions:?}\n{lines:#?}"
    );
    // The hook sees the masks in place but the root still writable.
    let hook_at = hook_ran.get().unwrap();
    assert!(hook_at > rec.pos("mount - /proc/sys") && hook_at == lines.len() - 1);
    // Missing masked paths are skipped.
    assert!(!lines.iter().any(|l| l.contains("/proc/acpi")));
    assert!(!lines.iter().any(|l| l.contains("touch /etc/hosts")));
}

#[test]
fn host_network_binds_sys_and_keeps_root_writable() {
    let rec = Recorder::default();
    let opts = MountOptions {
        private_net: false,
        tty_gid_mapped: false,
    };
    all(
        &rec,
        &spec(Rootfs::Dir("/img".into()), false),
        opts,
        &[],
        || Ok(()),
    )
    .unwrap();
    let lines = rec.lines();
    assert_eq!(lines[1], "mount /img /run/c1/merged - MS_BIND | MS_REC -");
    assert!(!lines.iter().any(|l| l.contains("sysfs")));
    // The whole tree under the bound /sys goes read-only, not just its top.
    assert!(
        rec.pos("mount /sys /run/c1/merged/sys - MS_BIND | MS_REC")
            < rec.pos("mount_setattr /run/c1/merged/sys ro recursive")
    );
    assert!(!lines.iter().any(|l| l.starts_with("mounts_under")));
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("newinstance,ptmxmode=0666,mode=0620"))
    );
    assert!(!lines.iter().any(|l| l.starts_with("mount - / - MS_RDONLY")));
}

#[test]
fn sysfs_refusal_falls_back_to_bind_and_mqueue_failure_is_tolerated() {
    let rec = Recorder {
        fail: vec!["mount sysfs".into(), "mount mqueue".into()],
        ..Default::default()
    };
    all(&rec, &spec(overlay(), false), OPTS, &[], || Ok(())).unwrap();
    assert!(rec.pos("mount sysfs") < rec.pos("mount /sys /run/c1/merged/sys"));
}

#[test]
fn without_mount_setattr_each_mount_under_sys_is_remounted_read_only() {
    let sys = Path::new("/run/c1/merged/sys");
    let rec = Recorder {
        fail: vec!["mount_setattr".into()],
        submounts: vec![
            sys.into(),
            sys.join("fs/cgroup"),
            sys.join("kernel/security"),
        ],
        ..Default::default()
    };
    let opts = MountOptions {
        private_net: false,
        tty_gid_mapped: false,
    };
    all(&rec, &spec(overlay(), false), opts, &[], || Ok(())).unwrap();
    let ro = |p: &str| {
        rec.pos(&format!(
            "mount - {p} - MS_RDONLY | MS_NOSUID | MS_NODEV | MS_REMOUNT | MS_BIND"
        ))
    };
    let order = [
        rec.pos("mount_setattr /run/c1/merged/sys"),
        rec.pos("mounts_under /run/c1/merged/sys"),
        ro("/run/c1/merged/sys"),
        ro("/run/c1/merged/sys/fs/cgroup"),
        ro("/run/c1/merged/sys/kernel/security"),
        rec.pos("pivot_root"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{:#?}", rec.lines());
    // A submount that cannot be made read-only fails the start.
    let rec = Recorder {
        fail: vec![
            "mount_setattr".into(),
            "mount - /run/c1/merged/sys/fs/cgroup".into(),
        ],
        submounts: vec![sys.into(), sys.join("fs/cgroup")],
        ..Default::default()
    };
    let err = all(&rec, &spec(overlay(), false), opts, &[], || Ok(())).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Setup { path, .. } if path == &sys.join("fs/cgroup")),
        "{err:?}"
    );
}

#[test]
fn the_rootfs_is_mounted_and_released_apart_from_the_rest() {
    let rec = Recorder::default();
    let fuse = Rootfs::FuseOverlay {
        lowers: vec!["/l/1".into()],
        upper: "/c/upper".into(),
        work: "/c/work".into(),
    };
    let s = spec(fuse, false);
    mount_root(&rec, &s).unwrap();
    assert_eq!(
        rec.lines(),
        [
            "mount - / - MS_REC | MS_SLAVE -",
            "fuse-overlayfs lowerdir=/l/1,upperdir=/c/upper,workdir=/c/work /run/c1/merged",
            "mount - /run/c1/merged - MS_PRIVATE -",
        ]
    );
    let rec = Recorder::default();
    setup(&rec, &s, OPTS, &[], || Ok(())).unwrap();
    assert!(
        !rec.lines()
            .iter()
            .any(|l| l.contains("fuse-overlayfs") || l.contains("MS_SLAVE"))
    );
    let rec = Recorder::default();
    release_root(&rec, &s).unwrap();
    assert_eq!(rec.lines(), ["umount2 /run/c1/merged MNT_DETACH"]);
}

#[test]
fn console_is_the_pty_slave_bound_over_a_new_file() {
    let rec = Recorder::default();
    bind_console(&rec, Path::new("/dev/pts/0")).unwrap();
    assert_eq!(
        rec.lines(),
        [
            "touch /dev/console",
            "mount /dev/pts/0 /dev/console - MS_BIND -"
        ]
    );
}

#[test]
fn failure_stops_the_sequence_and_names_the_path() {
    let rec = Recorder {
        fail: vec!["mount proc".into()],
        ..Default::default()
    };
    let err = all(&rec, &spec(overlay(), false), OPTS, &[], || Ok(())).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Setup { path, .. } if path == Path::new("/run/c1/merged/proc"))
    );
    assert!(!rec.lines().iter().any(|l| l.starts_with("pivot_root")));
}

#[test]
fn refuses_symlinked_targets_and_separators_in_overlay_paths() {
    let mut rec = Recorder::default();
    rec.kinds
        .insert("/run/c1/merged/proc".into(), Kind::Symlink);
    assert!(all(&rec, &spec(overlay(), false), OPTS, &[], || Ok(())).is_err());
    let bad = Rootfs::Overlay {
        lowers: vec!["/a:b".into()],
        upper: "/u".into(),
        work: "/w".into(),
    };
    let err = all(
        &Recorder::default(),
        &spec(bad, false),
        OPTS,
        &[],
        || Ok(()),
    )
    .unwrap_err();
    assert!(matches!(err, RuntimeError::UnsafeOverlayPath { .. }));
}
