//! Which driver works here: native overlay (mounted for real in the caller's user and mount
//! namespace), else fuse-overlayfs, else vfs.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, mknodat};
use xattr::FileExt;

use super::safefs::{self, OPAQUE_XATTR};
use super::{DriverKind, StorageError};

/// Mounts a tiny overlay with `userxattr` under `scratch` and checks that it reads our layer
/// format (a 0/0 whiteout hides a lower file, an opaque directory hides a lower directory's
/// contents) and takes writes; unmounts and cleans up. Must run inside a user + mount
/// namespace where we are root (or as real root).
pub fn probe_native_overlay(scratch: &Path) -> bool {
    match try_overlay(scratch) {
        Ok(()) => true,
        Err(err) => {
            tracing::debug!(scratch = ?scratch, err = %err, source = ?std::error::Error::source(&err), "native overlay unusable");
            false
        }
    }
}

/// fuse-overlayfs is in PATH and /dev/fuse opens for reading and writing.
pub fn fuse_overlayfs_available() -> bool {
    let in_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join("fuse-overlayfs"))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    in_path
        && OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .is_ok()
}

/// Picks overlay, else fuse-overlayfs, else vfs. Call inside the user namespace.
pub fn detect_driver(scratch: &Path) -> DriverKind {
    let driver = if probe_native_overlay(scratch) {
        DriverKind::Overlay
    } else if fuse_overlayfs_available() {
        DriverKind::FuseOverlayfs
    } else {
        DriverKind::Vfs
    };
    tracing::debug!(%driver, "storage driver detected");
    driver
}

fn try_overlay(scratch: &Path) -> Result<(), StorageError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let err = |step: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| StorageError::Probe { step, path, source }
    };
    std::fs::create_dir_all(scratch).map_err(err("create the scratch directory", scratch))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = scratch.join(format!(".overlay-probe-{}-{n}", std::process::id()));
    std::fs::create_dir(&dir).map_err(err("create the probe directory", &dir))?;
    let result = probe_in(&dir);
    if let Err(e) = safefs::remove_tree(&dir) {
        tracing::warn!(path = ?dir, err = %e, "cannot remove the overlay probe directory");
    }
    result
}

fn probe_in(dir: &Path) -> Result<(), StorageError> {
    let err = |step: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| StorageError::Probe { step, path, source }
    };
    let errno = |step: &'static str, path: &Path| {
        let f = err(step, path);
        move |e: nix::errno::Errno| f(e.into())
    };
    let [low, top, upper, work, merged]: [PathBuf; 5] =
        ["low", "top", "upper", "work", "merged"].map(|name| dir.join(name));
    for d in [
        &low,
        &top,
        &upper,
        &work,
        &merged,
        &low.join("d"),
        &top.join("d"),
    ] {
        std::fs::create_dir(d).map_err(err("create", d))?;
    }
    for f in [
        low.join("kept"),
        low.join("hidden"),
        low.join("d/lower"),
        top.join("d/upper"),
    ] {
        std::fs::write(&f, b"probe").map_err(err("write", &f))?;
    }
    let top_fd = safefs::open_dir(&top).map_err(errno("open", &top))?;
    mknodat(
        top_fd.as_fd(),
        OsStr::new("hidden"),
        SFlag::S_IFCHR,
        Mode::empty(),
        0,
    )
    .map_err(errno("create a whiteout", &top.join("hidden")))?;
    std::fs::File::open(top.join("d"))
        .and_then(|f| f.set_xattr(OPAQUE_XATTR, b"y"))
        .map_err(err("mark opaque", &top.join("d")))?;

    let options = format!(
        "lowerdir={}:{},upperdir={},workdir={},userxattr",
        top.display(),
        low.display(),
        upper.display(),
        work.display()
    );
    // overlay splits its options on ',' and lowerdir on ':'; such paths would be misread.
    if [&top, &low, &upper, &work].iter().any(|p| {
        p.as_os_str()
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b',' | b':'))
    }) {
        return Err(err(
            "use a path with ',' or ':' in it as an overlay layer",
            dir,
        )(io::Error::from(io::ErrorKind::InvalidInput)));
    }
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(errno("mount overlay", &merged))?;
    let checked = check_merged(&merged, &upper);
    let unmounted =
        umount2(&merged, MntFlags::MNT_DETACH).map_err(errno("unmount overlay", &merged));
    checked.and(unmounted)
}

fn check_merged(merged: &Path, upper: &Path) -> Result<(), StorageError> {
    let wrong = |what: &'static str| StorageError::Probe {
        step: what,
        path: merged.to_owned(),
        source: io::Error::other("the merged view is not what the layers say"),
    };
    if !merged.join("kept").exists() || !merged.join("d/upper").exists() {
        return Err(wrong("see lower files through"));
    }
    if merged.join("hidden").symlink_metadata().is_ok() {
        return Err(wrong("hide a file with a 0/0 whiteout through"));
    }
    if merged.join("d/lower").symlink_metadata().is_ok() {
        return Err(wrong(
            "hide a directory's contents with user.overlay.opaque through",
        ));
    }
    let new = merged.join("new");
    std::fs::write(&new, b"probe").map_err(|source| StorageError::Probe {
        step: "write",
        path: new,
        source,
    })?;
    if !upper.join("new").exists() {
        return Err(wrong("find a write in the upper directory through"));
    }
    Ok(())
}
