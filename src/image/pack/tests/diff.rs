//! The vfs driver's diff: a rootfs copied by the real vfs driver from two layers (one with
//! a whiteout and an opaque directory), changed the ways a container changes files, packed
//! with `pack_diff`, unpacked as a third layer and merged again by the vfs driver.

use std::path::PathBuf;

use super::*;
use crate::runtime::Rootfs;
use crate::storage::{DriverKind, Storage};

fn chain(n: char) -> String {
    format!("sha256:{}", n.to_string().repeat(64))
}

struct Setup {
    _dir: tempfile::TempDir,
    storage: Storage,
    rootfs: PathBuf,
    lowers: Vec<PathBuf>,
    base: PathBuf,
}

fn rootfs(storage: &Storage, container: &Path, chains: &[String]) -> PathBuf {
    match storage.prepare_rootfs(container, chains).unwrap() {
        Rootfs::Dir(p) => p,
        other => panic!("vfs gave {other:?}"),
    }
}

/// Two layers and a vfs rootfs made from them.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_owned();
    let storage = Storage::new(&base.join("data"), DriverKind::Vfs);
    Tree::new(&storage.layer_dir(&chain('1')))
        .dir("etc", 0o755, 0, 0)
        .file("etc/motd", 0o644, 0, 0, b"hello")
        .file("etc/passwd", 0o644, 0, 0, b"root:x:0:0::/root:/bin/sh\n")
        .file("etc/same-size", 0o644, 0, 0, b"aaaa")
        .file("etc/meta", 0o644, 0, 0, b"m")
        .symlink("etc/link", "motd")
        .dir("lib", 0o755, 0, 0)
        .file("lib/libc.so", 0o755, 0, 0, b"\x7fELF libc")
        .dir("lib/old", 0o755, 0, 0)
        .file("lib/old/x", 0o644, 0, 0, b"x")
        .dir("opaque", 0o755, 0, 0)
        .file("opaque/hidden-below", 0o644, 0, 0, b"h")
        .file("removed-below", 0o644, 0, 0, b"r")
        .dir("to-file", 0o755, 0, 0)
        .file("to-file/inner", 0o644, 0, 0, b"i")
        .file("to-dir", 0o644, 0, 0, b"f")
        .dir("srv", 0o755, 0, 0)
        .dir("srv/data", 0o700, 1000, 1000)
        .file("srv/data/db", 0o600, 1000, 1000, b"rows")
        .settle(T - 2000);
    Tree::new(&storage.layer_dir(&chain('2')))
        .whiteout("removed-below")
        .dir("opaque", 0o755, 0, 0)
        .opaque("opaque")
        .file("opaque/top", 0o644, 0, 0, b"t")
        .dir("lib", 0o755, 0, 0)
        .file("lib/libm.so", 0o755, 0, 0, b"\x7fELF libm")
        .settle(T - 1000);
    let rootfs = rootfs(&storage, &base.join("c1"), &[chain('1'), chain('2')]);
    let lowers = vec![
        storage.layer_dir(&chain('2')),
        storage.layer_dir(&chain('1')),
    ];
    Setup {
        _dir: dir,
        storage,
        rootfs,
        lowers,
        base,
    }
}

/// What a container does to its rootfs.
fn change(rootfs: &Path) {
    let r = Tree {
        root: rootfs.to_owned(),
    };
    r.file("etc/new", 0o600, 0, 0, b"added")
        .remove("etc/motd")
        .remove("lib/old")
        .remove("to-file")
        .file("to-file", 0o644, 0, 0, b"now a file")
        .remove("to-dir")
        .dir("to-dir", 0o711, 0, 0)
        .file("to-dir/inside", 0o644, 0, 0, b"in")
        .remove("etc/link")
        .symlink("etc/link", "passwd")
        .hardlink("srv/data/db-link", "srv/data/db")
        .xattr("lib/libc.so", "user.tag", b"patched")
        .file("removed-below", 0o644, 0, 0, b"back again");
    std::fs::set_permissions(
        rootfs.join("etc/meta"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    nix::unistd::chown(
        &rootfs.join("srv/data"),
        Some(nix::unistd::Uid::from_raw(2000)),
        None,
    )
    .unwrap();
    // Same size, and the old mtime put back: only the contents tell.
    let old = std::fs::metadata(rootfs.join("etc/same-size")).unwrap();
    std::fs::write(rootfs.join("etc/same-size"), b"bbbb").unwrap();
    let t = nix::sys::time::TimeSpec::new(
        std::os::unix::fs::MetadataExt::mtime(&old),
        std::os::unix::fs::MetadataExt::mtime_nsec(&old),
    );
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &rootfs.join("etc/same-size"),
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

fn diff_tar(s: &Setup, compare_contents: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let options = PackOptions {
        compression: Compression::None,
        exclude: Vec::new(),
        compare_contents,
    };
    write_diff_tar(&s.rootfs, &s.lowers, &mut out, &options).unwrap();
    out
}

#[test]
fn an_unchanged_rootfs_gives_an_empty_layer() {
    need_privileges();
    let s = setup();
    assert!(list_tar(&diff_tar(&s, true)).is_empty());
}

#[test]
fn the_diff_lists_exactly_the_changes() {
    need_privileges();
    let s = setup();
    change(&s.rootfs);
    let listed = list_tar(&diff_tar(&s, true));
    assert_eq!(
        names(&listed),
        vec![
            "etc/",
            "etc/.wh.motd",
            "etc/link",
            "etc/meta",
            "etc/new",
            "etc/same-size",
            "lib/",
            "lib/.wh.old",
            "lib/libc.so",
            "removed-below",
            "srv/",
            "srv/data/",
            "srv/data/db",
            "srv/data/db-link",
            "to-dir/",
            "to-dir/inside",
            "to-file",
        ]
    );
    let get = |n: &str| listed.iter().find(|l| l.name == n).unwrap();
    assert_eq!(get("etc/link").link, "passwd");
    assert_eq!(get("srv/data/").uid, 2000);
    assert_eq!(
        (
            get("srv/data/db-link").kind,
            get("srv/data/db-link").link.as_str()
        ),
        (EntryType::Link, "srv/data/db")
    );
    assert_eq!(get("to-dir/").mode, 0o711);
    assert_eq!(
        get("lib/libc.so").xattrs,
        vec![("user.tag".to_owned(), b"patched".to_vec())]
    );

    // Docker's naive diff trusts size and mtime.
    let trusting = list_tar(&diff_tar(&s, false));
    assert!(!names(&trusting).contains(&"etc/same-size"));
    assert_eq!(trusting.len(), listed.len() - 1);
}

#[test]
fn vfs_rootfs_changes_round_trip_through_a_layer() {
    need_privileges();
    let s = setup();
    change(&s.rootfs);
    let want = snapshot(&s.rootfs);
    let blobs = BlobStore::new(s.base.join("blobs"));
    let layer = pack_diff(&s.rootfs, &s.lowers, &blobs, &opts(Compression::Gzip)).unwrap();
    unpack_packed(&blobs, &layer, &s.storage.layer_dir(&chain('3')));
    let again = rootfs(
        &s.storage,
        &s.base.join("c2"),
        &[chain('1'), chain('2'), chain('3')],
    );
    assert_same_tree(&snapshot(&again), &want);
}
