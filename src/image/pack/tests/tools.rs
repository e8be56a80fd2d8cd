//! Layers checked by other tools (GNU tar, umoci) and upper directories made by the real
//! drivers (kernel overlay mounted with `userxattr`, fuse-overlayfs with and without
//! device whiteouts). Each fails, saying what is missing, where its tool or privilege is.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::image::testutil::{Node, need_tool};
use crate::storage::{DriverKind, Storage};

fn without_dir_mtimes(mut s: BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    for node in s.values_mut() {
        if node.kind == "dir" {
            node.mtime = 0;
        }
    }
    s
}

#[test]
fn gnu_tar_lists_and_extracts_the_layer() {
    need_privileges();
    need_tool("tar");
    let dir = tempfile::tempdir().unwrap();
    let upper = varied_upper(&dir.path().join("upper"));
    let blobs = BlobStore::new(dir.path().join("blobs"));
    let layer = pack_upper(&upper.root, &blobs, &opts(Compression::Gzip)).unwrap();
    let blob = blobs.path(&layer.digest);
    let listing = sh(&format!("tar -tzvf {}", blob.display()));
    let long_file = format!("{}/{}", "d".repeat(120), "f".repeat(200));
    for want in [
        "-rwsr-xr-x 0/0",
        "usr/bin/su-link link to usr/bin/su",
        "usr/bin/sh -> busybox",
        "prw--w---- 0/0",
        "drwxrwxrwt 0/0",
        "1000/1000",
        "65534/65534",
        "var/cache/.wh..wh..opq",
        "etc/.wh.motd",
        &long_file,
    ] {
        assert!(listing.contains(want), "no {want:?} in:\n{listing}");
    }
    let out = dir.path().join("extracted");
    std::fs::create_dir(&out).unwrap();
    sh(&format!(
        "tar --xattrs --xattrs-include='user.*' -xpzf {} -C {}",
        blob.display(),
        out.display()
    ));
    let got = snapshot(&out);
    let want = snapshot(&upper.root);
    for path in [
        "usr/bin/su",
        "home/app/xattrs",
        "home/app/nobody",
        long_file.as_str(),
    ] {
        assert_eq!(got[path], want[path], "{path}");
    }
    assert_eq!(
        got["usr/bin/su-link"].inode_of.as_deref(),
        Some("usr/bin/su")
    );
}

/// umoci applies our layer over a lower layer umoci made itself: whiteouts and the opaque
/// directory take effect, everything else arrives as it was.
#[test]
fn umoci_applies_the_layer_over_its_own_lower_layer() {
    need_privileges();
    need_tool("umoci");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let layout = d.join("layout");
    sh(&format!(
        "umoci init --layout {0} && umoci new --image {0}:base",
        layout.display()
    ));
    sh(&format!(
        "umoci unpack --image {}:base {}",
        layout.display(),
        d.join("lower").display()
    ));
    let lower = Tree {
        root: d.join("lower/rootfs"),
    };
    lower
        .dir("etc", 0o755, 0, 0)
        .file("etc/motd", 0o644, 0, 0, b"hello")
        .file("etc/passwd", 0o644, 0, 0, b"old")
        .dir("gone-dir", 0o755, 0, 0)
        .file("gone-dir/x", 0o644, 0, 0, b"x")
        .dir("var", 0o755, 0, 0)
        .dir("var/cache", 0o755, 0, 0)
        .file("var/cache/old", 0o644, 0, 0, b"stale")
        .file("kept", 0o600, 7, 7, b"untouched")
        .settle(T - 1000);
    sh(&format!(
        "umoci repack --image {}:base {}",
        layout.display(),
        d.join("lower").display()
    ));

    let upper = varied_upper(&d.join("upper"));
    let tar_path = d.join("layer.tar");
    std::fs::write(&tar_path, upper_tar(&upper.root)).unwrap();
    sh(&format!(
        "umoci raw add-layer --image {}:base --tag top {}",
        layout.display(),
        tar_path.display()
    ));
    sh(&format!(
        "umoci unpack --image {}:top {}",
        layout.display(),
        d.join("bundle").display()
    ));

    let mut want = snapshot(&upper.root);
    want.retain(|_, n| n.kind != "whiteout");
    for n in want.values_mut() {
        n.xattrs.remove("user.overlay.opaque");
    }
    let lower_snap = snapshot(&lower.root);
    want.insert("kept".into(), lower_snap["kept"].clone());
    assert_same_tree(
        &without_dir_mtimes(snapshot(&d.join("bundle/rootfs"))),
        &without_dir_mtimes(want),
    );
}

/// Unmounts (lazily) when dropped, so a failing test leaves no mount behind.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Changes a container typically makes, done through the merged mount.
fn change_through(merged: &Path) {
    let m = Tree {
        root: merged.to_owned(),
    };
    m.dir("new", 0o750, 1000, 1000)
        .file("new/file", 0o640, 1000, 1000, b"fresh")
        .xattr("new/file", "user.note", b"made in the container")
        .hardlink("new/link", "new/file")
        .symlink("new/sym", "../etc/passwd")
        .fifo("new/pipe", 0o600)
        .remove("etc/motd")
        .remove("gone-dir")
        .remove("var/cache")
        .dir("var/cache", 0o700, 0, 0)
        .file("var/cache/fresh", 0o644, 0, 0, b"new");
    std::fs::write(merged.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::set_permissions(
        merged.join("kept"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4700),
    )
    .unwrap();
    nix::unistd::chown(
        &merged.join("owned"),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1000)),
    )
    .unwrap();
}

/// Lower layer in the storage, mount, change, snapshot, unmount, pack the upper dir,
/// unpack it as the next layer and let the vfs driver merge both: the result is what the
/// container saw.
/// `check` sees the upper dir.
fn overlay_round_trip(
    mount: impl Fn(&Path, &Path, &Path, &Path) -> Mounted,
    check: impl FnOnce(&Path),
) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let storage = Storage::new(&d.join("data"), DriverKind::Vfs);
    let (c1, c2) = (
        format!("sha256:{}", "1".repeat(64)),
        format!("sha256:{}", "2".repeat(64)),
    );
    let lower = Tree::new(&storage.layer_dir(&c1));
    lower
        .dir("etc", 0o755, 0, 0)
        .file("etc/motd", 0o644, 0, 0, b"hello")
        .file("etc/passwd", 0o644, 0, 0, b"old")
        .dir("gone-dir", 0o755, 0, 0)
        .file("gone-dir/x", 0o644, 0, 0, b"x")
        .dir("var", 0o755, 0, 0)
        .dir("var/cache", 0o755, 0, 0)
        .file("var/cache/old", 0o644, 0, 0, b"stale")
        .file("kept", 0o755, 0, 0, b"untouched")
        .file("owned", 0o644, 0, 0, b"to chown")
        .settle(T - 1000);
    let (upper, work, merged) = (d.join("upper"), d.join("work"), d.join("merged"));
    for p in [&upper, &work, &merged] {
        std::fs::create_dir(p).unwrap();
    }
    let guard = mount(&lower.root, &upper, &work, &merged);
    change_through(&merged);
    let seen = snapshot(&merged);
    drop(guard);

    let blobs = BlobStore::new(d.join("blobs"));
    let layer = pack_upper(&upper, &blobs, &opts(Compression::Zstd)).unwrap();
    unpack_packed(&blobs, &layer, &storage.layer_dir(&c2));
    let rootfs = match storage.prepare_rootfs(&d.join("c"), &[c1, c2]).unwrap() {
        crate::runtime::Rootfs::Dir(p) => p,
        other => panic!("vfs gave {other:?}"),
    };
    assert_same_tree(&snapshot(&rootfs), &seen);
    check(&upper);
}

#[test]
fn kernel_overlay_upper_dirs_round_trip() {
    need_privileges();
    overlay_round_trip(
        |lower, upper, work, merged| {
            let data = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                lower.display(),
                upper.display(),
                work.display()
            );
            match nix::mount::mount(
                Some("overlay"),
                merged,
                Some("overlay"),
                nix::mount::MsFlags::empty(),
                Some(data.as_str()),
            ) {
                Ok(()) => Mounted(merged.to_owned()),
                Err(e) => panic!("cannot mount overlay with userxattr here: {e}"),
            }
        },
        |upper| {
            // The upper dir really had the native spellings.
            let motd = std::fs::symlink_metadata(upper.join("etc/motd")).unwrap();
            assert!(std::os::unix::fs::FileTypeExt::is_char_device(
                &motd.file_type()
            ));
            assert_eq!(
                xattr::get(upper.join("var/cache"), "user.overlay.opaque").unwrap(),
                Some(b"y".to_vec())
            );
        },
    );
}

fn fuse_mount(disable_device_whiteouts: bool) -> impl Fn(&Path, &Path, &Path, &Path) -> Mounted {
    move |lower, upper, work, merged| {
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let mut cmd = Command::new("fuse-overlayfs");
        cmd.args(["-o", &data]).arg(merged);
        if disable_device_whiteouts {
            cmd.env("FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT", "1");
        }
        let o = cmd.output().expect("fuse-overlayfs runs");
        assert!(
            o.status.success(),
            "fuse-overlayfs cannot mount here: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Mounted(merged.to_owned())
    }
}

#[test]
fn fuse_overlayfs_upper_dirs_round_trip() {
    need_privileges();
    need_tool("fuse-overlayfs");
    overlay_round_trip(fuse_mount(false), |upper| {
        let motd = std::fs::symlink_metadata(upper.join("etc/motd")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &motd.file_type()
        ));
        assert!(upper.join("var/cache/.wh..wh..opq").exists());
    });
}

/// fuse-overlayfs where it may not create devices (rootless on older kernels) writes
/// `.wh.NAME` files instead.
#[test]
fn fuse_overlayfs_file_whiteouts_round_trip() {
    need_privileges();
    need_tool("fuse-overlayfs");
    overlay_round_trip(fuse_mount(true), |upper| {
        assert!(
            upper.join("etc/.wh.motd").is_file(),
            "fuse-overlayfs kept device whiteouts"
        );
        assert!(upper.join(".wh.gone-dir").is_file());
    });
}

/// `find`'s view of a tree: path, type, mode, size, link target, and file contents' md5.
fn find_listing(root: &Path) -> String {
    sh(&format!(
        "cd {} && find . -mindepth 1 -printf '%P %y %m %s %l\\n' | sort && find . -type f -exec md5sum {{}} + | sort -k2",
        root.display()
    ))
}

/// An overlay the way burrow mounts it, unprivileged in a user namespace (`mount` is the
/// shell command, with `{l} {u} {w} {m}` for the directories): changes made there, packed,
/// unpacked and merged by the vfs driver, give what the container saw. The upper dir stays
/// in `d` for the caller.
fn rootless_round_trip(d: &Path, mount: &str) {
    let storage = Storage::new(&d.join("data"), DriverKind::Vfs);
    let (c1, c2) = (
        format!("sha256:{}", "1".repeat(64)),
        format!("sha256:{}", "2".repeat(64)),
    );
    let lower = Tree::new(&storage.layer_dir(&c1));
    lower
        .dir("d", 0o755, 0, 0)
        .file("d/old", 0o644, 0, 0, b"old")
        .dir("d/sub", 0o755, 0, 0)
        .file("d/sub/deep", 0o644, 0, 0, b"deep")
        .file("gone", 0o644, 0, 0, b"gone")
        .file("kept", 0o644, 0, 0, b"kept")
        .settle(T);
    let (upper, work, merged) = (d.join("upper"), d.join("work"), d.join("merged"));
    for p in [&upper, &work, &merged] {
        std::fs::create_dir(p).unwrap();
    }
    let seen = d.join("seen");
    let mount = mount
        .replace("{l}", &lower.root.display().to_string())
        .replace("{u}", &upper.display().to_string())
        .replace("{w}", &work.display().to_string())
        .replace("{m}", &merged.display().to_string());
    let script = format!(
        "set -e
        {mount}
        rm -rf {m}/d && mkdir {m}/d && echo new > {m}/d/new
        rm {m}/gone
        echo changed > {m}/kept
        (cd {m} && find . -mindepth 1 -printf '%P %y %m %s %l\\n' | sort && find . -type f -exec md5sum {{}} + | sort -k2) > {seen}
        umount {m}",
        m = merged.display(),
        seen = seen.display(),
    );
    let out = Command::new("unshare")
        .args(["-Urm", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot mount in a user namespace here: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blobs = BlobStore::new(d.join("blobs"));
    let layer = pack_upper(&upper, &blobs, &opts(Compression::Gzip)).unwrap();
    let mut tar = Vec::new();
    write_upper_tar(&upper, &mut tar, &opts(Compression::None)).unwrap();
    assert_eq!(
        names(&list_tar(&tar)),
        vec![".wh.gone", "d/", "d/.wh..wh..opq", "d/new", "kept"]
    );
    unpack_packed(&blobs, &layer, &storage.layer_dir(&c2));
    let rootfs = match storage.prepare_rootfs(&d.join("c"), &[c1, c2]).unwrap() {
        crate::runtime::Rootfs::Dir(p) => p,
        other => panic!("vfs gave {other:?}"),
    };
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(seen.contains("d/new f 644 4 \n"), "{seen}");
    assert_eq!(find_listing(&rootfs), seen);
}

/// fuse-overlayfs unprivileged: opaque directories get `user.fuseoverlayfs.opaque`
/// (trusted.* is out of reach) and, in fuse-overlayfs 1.10, a bookkeeping whiteout.
#[test]
fn rootless_fuse_overlayfs_upper_dirs_round_trip() {
    need_privileges();
    need_tool("fuse-overlayfs");
    need_tool("unshare");
    let dir = tempfile::tempdir().unwrap();
    let mount = "fuse-overlayfs -o lowerdir={l},upperdir={u},workdir={w} {m}";
    rootless_round_trip(dir.path(), mount);
    assert_eq!(
        xattr::get(dir.path().join("upper/d"), "user.fuseoverlayfs.opaque").unwrap(),
        Some(b"y".to_vec()),
        "not the rootless spelling"
    );
}

/// Kernel overlay unprivileged, with `userxattr`, as burrow's runtime mounts it.
#[test]
fn rootless_kernel_overlay_upper_dirs_round_trip() {
    need_privileges();
    need_tool("unshare");
    let dir = tempfile::tempdir().unwrap();
    let mount = "mount -t overlay overlay -o lowerdir={l},upperdir={u},workdir={w},userxattr {m}";
    rootless_round_trip(dir.path(), mount);
    assert_eq!(
        xattr::get(dir.path().join("upper/d"), "user.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
}
