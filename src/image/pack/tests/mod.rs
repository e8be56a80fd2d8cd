//! The layer writer against real trees: round trips through `unpack`, the exact stream,
//! determinism, digests checked by `sha256sum`; `edges` covers exclusions, empty layers,
//! devices and failures; `tools` checks the layers with GNU tar, umoci and real overlay
//! mounts; `diff` covers the vfs driver.
//!
//! Building the trees needs root (other owners, whiteout devices): elsewhere the tests fail
//! saying so (CI runs them as root).

use std::io::Read;
use std::path::Path;
use std::process::Command;

use tar::EntryType;

use super::*;
use crate::image::testutil::{Tree, assert_same_tree, need_privileges, snapshot};
use crate::image::unpack::{UnpackOptions, unpack_layer};

mod diff;
mod edges;
mod tools;

pub(super) const T: i64 = 1_700_000_000;

/// One entry of a tar stream, as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    pub name: String,
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub link: String,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub(super) fn list_tar(bytes: &[u8]) -> Vec<Listed> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for ext in exts {
                let ext = ext.unwrap();
                if let Some(n) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push((n.to_owned(), ext.value_bytes().to_vec()));
                }
            }
        }
        let h = e.header().clone();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        out.push(Listed {
            name: String::from_utf8_lossy(&e.path_bytes()).into_owned(),
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: e.header().uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            size: h.size().unwrap(),
            link,
            xattrs,
        });
        let mut sink = Vec::new();
        e.read_to_end(&mut sink).unwrap();
    }
    out
}

pub(super) fn names(listed: &[Listed]) -> Vec<&str> {
    listed.iter().map(|l| l.name.as_str()).collect()
}

pub(super) fn opts(compression: Compression) -> PackOptions {
    PackOptions {
        compression,
        ..PackOptions::default()
    }
}

pub(super) fn upper_tar(upper: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    write_upper_tar(upper, &mut out, &opts(Compression::None)).unwrap();
    out
}

/// Unpacks a packed layer into `dest` and returns the diff id unpack computed.
pub(super) fn unpack_packed(blobs: &BlobStore, layer: &PackedLayer, dest: &Path) -> String {
    unpack_layer(
        &blobs.path(&layer.digest),
        layer.compression,
        dest,
        &UnpackOptions::default(),
    )
    .unwrap()
    .diff_id
}

pub(super) fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sha256sum`'s digest of a file, as `sha256:<hex>`.
pub(super) fn sha256sum(cmd_output_of: &str) -> String {
    let out = sh(cmd_output_of);
    format!("sha256:{}", out.split_whitespace().next().unwrap())
}

/// The varied upper directory of the round trip tests: every kind of entry a container
/// leaves, with owners, modes, xattrs and long names.
pub(super) fn varied_upper(root: &Path) -> Tree {
    let t = Tree::new(root);
    let long_dir = "d".repeat(120);
    let long_file = format!("{long_dir}/{}", "f".repeat(200));
    t.dir("etc", 0o755, 0, 0)
        .file("etc/passwd", 0o644, 0, 0, b"root:x:0:0::/root:/bin/sh\n")
        .file("etc/shadow", 0o640, 0, 42, b"root:*::0:::::\n")
        .whiteout("etc/motd")
        .dir("usr", 0o755, 0, 0)
        .dir("usr/bin", 0o755, 0, 0)
        .file("usr/bin/su", 0o4755, 0, 0, b"\x7fELF setuid")
        .file("usr/bin/wall", 0o2755, 0, 5, b"\x7fELF setgid")
        .hardlink("usr/bin/su-link", "usr/bin/su")
        .hardlink("usr/bin/zz-su-link", "usr/bin/su")
        .symlink("usr/bin/sh", "busybox")
        .symlink("usr/bin/long-target", &"t/".repeat(80))
        .dir("tmp", 0o1777, 0, 0)
        .fifo("tmp/pipe", 0o620)
        .file("tmp/empty", 0o600, 0, 0, b"")
        .dir("home", 0o755, 0, 0)
        .dir("home/app", 0o700, 1000, 1000)
        .file("home/app/.profile", 0o644, 1000, 1000, b"export X=1\n")
        .file("home/app/big", 0o644, 1000, 1000, &big_content())
        .file("home/app/nobody", 0o444, 65534, 65534, b"n")
        .file("home/app/xattrs", 0o644, 1000, 1000, b"x")
        .xattr("home/app/xattrs", "user.mime_type", b"text/plain")
        .xattr("home/app/xattrs", "user.binary", b"\x00\x01\xff")
        .dir("var", 0o755, 0, 0)
        .dir("var/cache", 0o755, 0, 0)
        .opaque("var/cache")
        .file("var/cache/fresh", 0o644, 0, 0, b"new")
        .xattr("var", "user.dir-attr", b"on a directory")
        .whiteout("gone-dir")
        .dir(&long_dir, 0o755, 0, 0)
        .file(&long_file, 0o644, 0, 0, b"deep");
    t.settle(T);
    t
}

/// 300 KiB that compresses a little, so reads and writes span many buffers.
fn big_content() -> Vec<u8> {
    (0..300 * 1024u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn round_trip_of_a_varied_upper_dir_in_every_compression() {
    need_privileges();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let upper = varied_upper(&dir.path().join("upper"));
        let blobs = BlobStore::new(dir.path().join("blobs"));
        let layer = pack_upper(&upper.root, &blobs, &opts(compression)).unwrap();
        assert_eq!(layer.compression, compression);
        assert_eq!(layer.media_type, layer_media_type(compression));

        let dest = dir.path().join("unpacked");
        let diff_id = unpack_packed(&blobs, &layer, &dest);
        assert_eq!(diff_id, layer.diff_id, "{compression:?}");
        assert_same_tree(&snapshot(&dest), &snapshot(&upper.root));

        let blob = blobs.path(&layer.digest);
        assert_eq!(std::fs::metadata(&blob).unwrap().len(), layer.size);
        assert_eq!(
            sha256sum(&format!("sha256sum {}", blob.display())),
            layer.digest
        );
        // The zstd tool is not everywhere; the crate decompresses where it is missing.
        let zstd_cli = Command::new("zstd").arg("--version").output().is_ok();
        let plain = dir.path().join("plain.tar");
        let (decompress, source) = match compression {
            Compression::None => ("cat", &blob),
            Compression::Gzip => ("gzip -dc", &blob),
            Compression::Zstd if zstd_cli => ("zstd -dcq", &blob),
            Compression::Zstd => {
                let data = zstd::decode_all(std::fs::File::open(&blob).unwrap()).unwrap();
                std::fs::write(&plain, data).unwrap();
                ("cat", &plain)
            }
        };
        assert_eq!(
            sha256sum(&format!("{decompress} {} | sha256sum", source.display())),
            layer.diff_id
        );
        assert_eq!(
            sh(&format!("{decompress} {} | wc -c", source.display())).trim(),
            layer.tar_size.to_string()
        );
    }
}

#[test]
fn the_stream_is_docker_shaped() {
    need_privileges();
    let dir = tempfile::tempdir().unwrap();
    let upper = varied_upper(&dir.path().join("upper"));
    let listed = list_tar(&upper_tar(&upper.root));
    let long_dir = "d".repeat(120);
    let long_file = format!("{long_dir}/{}", "f".repeat(200));
    assert_eq!(
        names(&listed),
        vec![
            ".wh.gone-dir",
            &format!("{long_dir}/"),
            &long_file,
            "etc/",
            "etc/.wh.motd",
            "etc/passwd",
            "etc/shadow",
            "home/",
            "home/app/",
            "home/app/.profile",
            "home/app/big",
            "home/app/nobody",
            "home/app/xattrs",
            "tmp/",
            "tmp/empty",
            "tmp/pipe",
            "usr/",
            "usr/bin/",
            "usr/bin/long-target",
            "usr/bin/sh",
            "usr/bin/su",
            "usr/bin/su-link",
            "usr/bin/wall",
            "usr/bin/zz-su-link",
            "var/",
            "var/cache/",
            "var/cache/.wh..wh..opq",
            "var/cache/fresh",
        ]
    );
    let get = |name: &str| listed.iter().find(|l| l.name == name).unwrap();
    let su = get("usr/bin/su");
    assert_eq!(
        (su.kind, su.mode, su.mtime, su.size),
        (EntryType::Regular, 0o4755, T as u64, 11)
    );
    let link = get("usr/bin/su-link");
    assert_eq!(
        (link.kind, link.link.as_str()),
        (EntryType::Link, "usr/bin/su")
    );
    assert_eq!(get("usr/bin/zz-su-link").link, "usr/bin/su");
    assert_eq!(get("usr/bin/long-target").link, "t/".repeat(80));
    assert_eq!(get("tmp/pipe").kind, EntryType::Fifo);
    assert_eq!(
        (get("tmp/").mode, get("tmp/").kind),
        (0o1777, EntryType::Directory)
    );
    let shadow = get("etc/shadow");
    assert_eq!((shadow.uid, shadow.gid), (0, 42));
    let nobody = get("home/app/nobody");
    assert_eq!((nobody.uid, nobody.gid, nobody.mode), (65534, 65534, 0o444));
    let wh = get("etc/.wh.motd");
    assert_eq!((wh.kind, wh.size, wh.mode), (EntryType::Regular, 0, 0o600));
    assert_eq!(
        get("home/app/xattrs").xattrs,
        vec![
            ("user.binary".to_owned(), b"\x00\x01\xff".to_vec()),
            ("user.mime_type".to_owned(), b"text/plain".to_vec())
        ]
    );
    assert_eq!(
        get("var/").xattrs,
        vec![("user.dir-attr".to_owned(), b"on a directory".to_vec())],
        "the opaque xattr stays out; the marker says it"
    );
    assert!(get("var/cache/").xattrs.is_empty());
}

/// The same tree made in another order (other inode numbers, other directory order on
/// disk) gives the same bytes, and packing twice too.
#[test]
fn the_same_tree_gives_the_same_digests() {
    need_privileges();
    let dir = tempfile::tempdir().unwrap();
    let a = varied_upper(&dir.path().join("a"));
    let b = Tree::new(&dir.path().join("b"));
    let long_dir = "d".repeat(120);
    b.dir(&long_dir, 0o755, 0, 0)
        .file(
            &format!("{long_dir}/{}", "f".repeat(200)),
            0o644,
            0,
            0,
            b"deep",
        )
        .whiteout("gone-dir")
        .dir("var", 0o755, 0, 0)
        .xattr("var", "user.dir-attr", b"on a directory")
        .dir("var/cache", 0o755, 0, 0)
        .file("var/cache/fresh", 0o644, 0, 0, b"new")
        .opaque("var/cache")
        .dir("home", 0o755, 0, 0)
        .dir("home/app", 0o700, 1000, 1000)
        .file("home/app/xattrs", 0o644, 1000, 1000, b"x")
        .xattr("home/app/xattrs", "user.binary", b"\x00\x01\xff")
        .xattr("home/app/xattrs", "user.mime_type", b"text/plain")
        .file("home/app/nobody", 0o444, 65534, 65534, b"n")
        .file("home/app/big", 0o644, 1000, 1000, &big_content())
        .file("home/app/.profile", 0o644, 1000, 1000, b"export X=1\n")
        .dir("tmp", 0o1777, 0, 0)
        .file("tmp/empty", 0o600, 0, 0, b"")
        .fifo("tmp/pipe", 0o620)
        .dir("usr", 0o755, 0, 0)
        .dir("usr/bin", 0o755, 0, 0)
        .symlink("usr/bin/long-target", &"t/".repeat(80))
        .symlink("usr/bin/sh", "busybox")
        .file("usr/bin/wall", 0o2755, 0, 5, b"\x7fELF setgid")
        // The first name written is the sorted first, whichever was made first.
        .file("usr/bin/zz-su-link", 0o4755, 0, 0, b"\x7fELF setuid")
        .hardlink("usr/bin/su", "usr/bin/zz-su-link")
        .hardlink("usr/bin/su-link", "usr/bin/su")
        .dir("etc", 0o755, 0, 0)
        .whiteout("etc/motd")
        .file("etc/shadow", 0o640, 0, 42, b"root:*::0:::::\n")
        .file("etc/passwd", 0o644, 0, 0, b"root:x:0:0::/root:/bin/sh\n")
        .settle(T);

    let blobs = BlobStore::new(dir.path().join("blobs"));
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let pa = pack_upper(&a.root, &blobs, &opts(compression)).unwrap();
        let pb = pack_upper(&b.root, &blobs, &opts(compression)).unwrap();
        let pa2 = pack_upper(&a.root, &blobs, &opts(compression)).unwrap();
        assert_eq!(pa, pb, "{compression:?}");
        assert_eq!(pa, pa2, "{compression:?}");
    }
    assert_eq!(upper_tar(&a.root), upper_tar(&b.root));
}

#[test]
fn fuse_overlayfs_spellings_become_standard_whiteouts() {
    need_privileges();
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(&dir.path().join("upper"));
    t.file(".wh.gone", 0o700, 0, 0, b"")
        .dir("a", 0o755, 0, 0)
        // fuse-overlayfs without the right to write trusted.* (rootless), with the
        // bookkeeping whiteout it leaves beside the marker:
        .xattr("a", "user.fuseoverlayfs.opaque", b"y")
        .file("a/.wh..wh..opq", 0o700, 0, 0, b"")
        .whiteout("a/.wh..opq")
        .file("a/kept", 0o644, 0, 0, b"k")
        .xattr("a/kept", "user.fuseoverlayfs.origin", b"/lower/a/kept")
        // fuse-overlayfs as root: the privileged xattr and the marker file.
        .dir("b", 0o755, 0, 0)
        .xattr("b", "trusted.overlay.opaque", b"y")
        .file("b/.wh..wh..opq", 0o700, 0, 0, b"")
        // Only the marker file (no xattr support).
        .dir("c", 0o755, 0, 0)
        .file("c/.wh..wh..opq", 0o700, 0, 0, b"")
        // A whiteout file and a device for the same name, and one for a name made again.
        .file("c/.wh.twice", 0o700, 0, 0, b"")
        .whiteout("c/twice")
        .file("c/.wh.back", 0o700, 0, 0, b"")
        .file("c/back", 0o644, 0, 0, b"b")
        .dir(".wh..wh.plnk", 0o700, 0, 0)
        .file(".wh.", 0o700, 0, 0, b"")
        .settle(T);
    let listed = list_tar(&upper_tar(&t.root));
    assert_eq!(
        names(&listed),
        vec![
            ".wh.gone",
            "a/",
            "a/.wh..wh..opq",
            "a/kept",
            "b/",
            "b/.wh..wh..opq",
            "c/",
            "c/.wh..wh..opq",
            "c/.wh.twice",
            "c/back",
        ]
    );
    assert!(listed.iter().all(|l| l.xattrs.is_empty()), "{listed:?}");

    let blobs = BlobStore::new(dir.path().join("blobs"));
    let layer = pack_upper(&t.root, &blobs, &opts(Compression::Gzip)).unwrap();
    let dest = dir.path().join("unpacked");
    unpack_packed(&blobs, &layer, &dest);
    let want = Tree::new(&dir.path().join("want"));
    want.whiteout("gone")
        .dir("a", 0o755, 0, 0)
        .opaque("a")
        .file("a/kept", 0o644, 0, 0, b"k")
        .dir("b", 0o755, 0, 0)
        .opaque("b")
        .dir("c", 0o755, 0, 0)
        .opaque("c")
        .whiteout("c/twice")
        .file("c/back", 0o644, 0, 0, b"b")
        .settle(T);
    assert_same_tree(&snapshot(&dest), &snapshot(&want.root));
}
