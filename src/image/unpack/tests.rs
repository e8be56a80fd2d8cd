//! Tests build tar streams in memory. Hostile names are written straight into the header
//! fields, since `tar::Header::set_path` refuses them.
//!
//! They run as root (CI) and also inside `unshare -Ur` (one id mapped): where ownership
//! cannot be given away, the owner assertions switch to the `ignore_chown_errors` outcome.

use super::writer::normalize;
use super::*;
use nix::sys::stat::{SFlag, lstat};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use tar::{EntryType, Header};

const MTIME: u64 = 1_600_000_000;

struct Tar {
    b: tar::Builder<Vec<u8>>,
    uid: u64,
    gid: u64,
}

impl Tar {
    fn new() -> Self {
        Tar {
            b: tar::Builder::new(Vec::new()),
            uid: 0,
            gid: 0,
        }
    }

    fn raw(
        &mut self,
        name: &[u8],
        kind: EntryType,
        link: &[u8],
        mode: u32,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(MTIME);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name);
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Directory, b"", mode, b"")
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Regular, b"", mode, data)
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Symlink,
            target.as_bytes(),
            0o777,
            b"",
        )
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Link,
            target.as_bytes(),
            0o644,
            b"",
        )
    }

    fn device(&mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o644);
        h.set_path(name).unwrap();
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &b""[..]).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// A blob stored like the content store does, and a destination that does not exist yet.
struct Case {
    dir: tempfile::TempDir,
    blob: PathBuf,
    dest: PathBuf,
}

fn case(blob_bytes: &[u8]) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let hex = hex::encode(Sha256::digest(blob_bytes));
    let blob = dir.path().join("blobs/sha256").join(&hex);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, blob_bytes).unwrap();
    let dest = dir.path().join("layers/abc/diff");
    Case { dir, blob, dest }
}

fn unpack(
    c: &Case,
    compression: Compression,
    ignore_chown_errors: bool,
) -> Result<UnpackStats, UnpackError> {
    unpack_layer(
        &c.blob,
        compression,
        &c.dest,
        &UnpackOptions {
            ignore_chown_errors,
        },
    )
}

fn run(tar: &[u8]) -> (Case, Result<UnpackStats, UnpackError>) {
    let c = case(tar);
    let r = unpack(&c, Compression::None, false);
    (c, r)
}

fn diff_id_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Nothing but the final destination (or nothing at all) is left beside it.
fn assert_no_temp_left(c: &Case) {
    let parent = c.dest.parent().unwrap();
    let left: Vec<_> = std::fs::read_dir(parent)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name())
                .filter(|n| n != "diff")
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "temporary directories left behind: {left:?}"
    );
}

/// Whether this process can give files away to another id (root, or a userns with a range).
fn can_chown_to(uid: u32) -> bool {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    nix::unistd::chown(tmp.path(), Some(nix::unistd::Uid::from_raw(uid)), None).is_ok()
}

#[test]
fn normalize_strips_and_refuses_climbing() {
    let n = |s: &str| {
        normalize(s.as_bytes()).map(|v| {
            v.iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        n("/etc/./passwd"),
        Some(vec!["etc".into(), "passwd".into()])
    );
    assert_eq!(n("./a//b/../c/"), Some(vec!["a".into(), "c".into()]));
    assert_eq!(n("./"), Some(vec![]));
    assert_eq!(n("../x"), None);
    assert_eq!(n("a/../../x"), None);
    assert_eq!(n("/../x"), None);
}

#[test]
fn unpacks_files_dirs_links_modes_and_times() {
    let mut t = Tar::new();
    t.dir("./", 0o755)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o555)
        .file("usr/bin/tool", 0o4755, b"#!/bin/sh\n")
        .file("usr/bin/other", 0o2711, b"x")
        .hardlink("usr/bin/tool-link", "usr/bin/tool")
        .symlink("bin", "/usr/bin")
        .symlink("usr/lib64", "../lib")
        .file("etc/implied-parent", 0o600, b"secret")
        .dir("tmp", 0o1777)
        .raw(b"fifo", EntryType::Fifo, b"", 0o640, b"");
    let bytes = t.bytes();
    let (c, r) = run(&bytes);
    let stats = r.unwrap();
    assert_eq!(stats.diff_id, diff_id_of(&bytes));
    assert_eq!(
        stats.size,
        10 + 1 + 6,
        "hard links and non-files add nothing"
    );
    let d = &c.dest;

    assert_eq!(
        std::fs::read(d.join("usr/bin/tool")).unwrap(),
        b"#!/bin/sh\n"
    );
    let tool = std::fs::symlink_metadata(d.join("usr/bin/tool")).unwrap();
    assert_eq!(
        tool.mode() & 0o7777,
        0o4755,
        "setuid survives because chmod follows chown"
    );
    assert_eq!(tool.mtime(), MTIME as i64);
    let other = std::fs::symlink_metadata(d.join("usr/bin/other")).unwrap();
    assert_eq!(other.mode() & 0o7777, 0o2711);
    let link = std::fs::symlink_metadata(d.join("usr/bin/tool-link")).unwrap();
    assert_eq!(
        (link.ino(), link.nlink()),
        (tool.ino(), 2),
        "hard link shares the inode"
    );

    assert_eq!(
        std::fs::read_link(d.join("bin")).unwrap(),
        Path::new("/usr/bin")
    );
    assert_eq!(
        std::fs::read_link(d.join("usr/lib64")).unwrap(),
        Path::new("../lib")
    );
    let bin = std::fs::symlink_metadata(d.join("bin")).unwrap();
    assert_eq!(
        bin.mtime(),
        MTIME as i64,
        "symlink times are set without following"
    );

    let bindir = std::fs::metadata(d.join("usr/bin")).unwrap();
    assert_eq!(bindir.mode() & 0o7777, 0o555);
    assert_eq!(
        bindir.mtime(),
        MTIME as i64,
        "directory mtimes are set after their contents"
    );
    assert_eq!(
        std::fs::metadata(d.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        std::fs::metadata(d.join("etc")).unwrap().mode() & 0o7777,
        0o755,
        "implied parent"
    );
    assert_eq!(std::fs::metadata(d).unwrap().mode() & 0o7777, 0o755);
    let fifo = lstat(&d.join("fifo")).unwrap();
    assert_eq!(fifo.st_mode & SFlag::S_IFMT.bits(), SFlag::S_IFIFO.bits());
    assert_eq!(fifo.st_mode & 0o7777, 0o640);
    assert_no_temp_left(&c);
}

#[test]
fn ownership_follows_the_header_or_is_tolerated() {
    let mut t = Tar::new();
    t.uid = 1234;
    t.gid = 2345;
    t.dir("home/", 0o750)
        .file("home/f", 0o4750, b"x")
        .symlink("home/l", "f");
    let bytes = t.bytes();

    let c = case(&bytes);
    if can_chown_to(1234) {
        unpack(&c, Compression::None, false).unwrap();
        for name in ["home", "home/f", "home/l"] {
            let m = std::fs::symlink_metadata(c.dest.join(name)).unwrap();
            assert_eq!((m.uid(), m.gid()), (1234, 2345), "{name}");
        }
        assert_eq!(
            std::fs::metadata(c.dest.join("home/f")).unwrap().mode() & 0o7777,
            0o4750
        );
    } else {
        // One id mapped: refusing is the default, keeping root-in-namespace is opt-in.
        let err = unpack(&c, Compression::None, false).unwrap_err();
        assert!(
            matches!(
                err,
                UnpackError::Chown {
                    uid: 1234,
                    gid: 2345,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!c.dest.exists());
        assert_no_temp_left(&c);
        unpack(&c, Compression::None, true).unwrap();
        let m = std::fs::symlink_metadata(c.dest.join("home/f")).unwrap();
        assert_eq!(m.uid(), nix::unistd::geteuid().as_raw());
        assert_eq!(m.mode() & 0o7777, 0o4750);
    }
}

#[test]
fn whiteouts_become_overlay_whiteouts_and_opaque_markers() {
    let mut t = Tar::new();
    t.dir("etc/", 0o755)
        .file("etc/.wh.motd", 0o644, b"")
        .file("var/cache/.wh..wh..opq", 0o644, b"")
        .dir("var/", 0o755)
        .dir("var/cache/", 0o700)
        .file("var/cache/kept", 0o644, b"k")
        .file(".wh..wh.plnk", 0o644, b"")
        .file("aufs/.wh..wh.aufs", 0o644, b"");
    let (c, r) = run(&t.bytes());
    r.unwrap();
    let wh = lstat(&c.dest.join("etc/motd")).unwrap();
    assert_eq!(
        wh.st_mode & SFlag::S_IFMT.bits(),
        SFlag::S_IFCHR.bits(),
        "whiteout is a char device"
    );
    assert_eq!(wh.st_rdev, 0, "whiteout is device 0/0");
    assert!(!c.dest.join("etc/.wh.motd").exists());
    let cache = c.dest.join("var/cache");
    assert_eq!(
        xattr::get(&cache, "user.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(std::fs::metadata(&cache).unwrap().mode() & 0o7777, 0o700);
    assert!(cache.join("kept").exists());
    assert!(!c.dest.join(".wh..wh.plnk").exists() && !c.dest.join("plnk").exists());
    assert!(
        !c.dest.join("aufs/.wh..wh.aufs").exists(),
        "aufs metadata skipped"
    );
}

#[test]
fn whiteout_replaces_an_earlier_entry_and_bad_whiteouts_fail() {
    let mut t = Tar::new();
    t.dir("d/", 0o755)
        .file("d/x", 0o644, b"x")
        .file(".wh.d", 0o644, b"");
    let (c, r) = run(&t.bytes());
    r.unwrap();
    assert_eq!(
        lstat(&c.dest.join("d")).unwrap().st_mode & SFlag::S_IFMT.bits(),
        SFlag::S_IFCHR.bits()
    );

    let mut t = Tar::new();
    t.file("a/.wh..", 0o644, b"");
    let (c, r) = run(&t.bytes());
    assert!(matches!(r, Err(UnpackError::BadWhiteout { .. })), "{r:?}");
    assert!(!c.dest.exists());
    assert_no_temp_left(&c);
}

#[test]
fn entries_replace_earlier_ones_with_the_same_name() {
    let mut t = Tar::new();
    t.file("a", 0o644, b"file")
        .dir("a/", 0o755)
        .file("a/inner", 0o644, b"i")
        .dir("a/", 0o700)
        .dir("b/", 0o755)
        .file("b/child", 0o644, b"c")
        .symlink("b", "/elsewhere")
        .file("c", 0o644, b"one")
        .file("c", 0o600, b"two");
    let (c, r) = run(&t.bytes());
    r.unwrap();
    assert_eq!(
        std::fs::read(c.dest.join("a/inner")).unwrap(),
        b"i",
        "a dir over a dir keeps it"
    );
    assert_eq!(
        std::fs::metadata(c.dest.join("a")).unwrap().mode() & 0o7777,
        0o700,
        "last header wins"
    );
    assert_eq!(
        std::fs::read_link(c.dest.join("b")).unwrap(),
        Path::new("/elsewhere")
    );
    assert_eq!(std::fs::read(c.dest.join("c")).unwrap(), b"two");
}

#[test]
fn climbing_names_are_refused_and_absolute_names_stay_inside() {
    for name in ["../../x", "a/../../x", "/../escape"] {
        let mut t = Tar::new();
        t.file("ok", 0o644, b"fine")
            .raw(name.as_bytes(), EntryType::Regular, b"", 0o644, b"bad");
        let (c, r) = run(&t.bytes());
        let err = r.unwrap_err();
        assert!(
            matches!(&err, UnpackError::Escape { entry, .. } if entry == name),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("entry \"{name}\" escapes the layer root")),
            "{msg}"
        );
        assert!(
            msg.starts_with("layer sha256:"),
            "names the layer by digest: {msg}"
        );
        assert!(!c.dest.exists());
        assert!(!c.dir.path().join("x").exists() && !c.dir.path().join("layers/x").exists());
        assert_no_temp_left(&c);
    }

    let mut t = Tar::new();
    t.raw(b"/etc/abs", EntryType::Regular, b"", 0o644, b"in")
        .raw(b"./rel/./f", EntryType::Regular, b"", 0o644, b"r");
    let (c, r) = run(&t.bytes());
    r.unwrap();
    assert_eq!(std::fs::read(c.dest.join("etc/abs")).unwrap(), b"in");
    assert_eq!(std::fs::read(c.dest.join("rel/f")).unwrap(), b"r");
}

#[test]
fn symlinked_parents_are_refused() {
    let outside = tempfile::Builder::new()
        .prefix("OUTSIDE")
        .tempdir_in("/tmp")
        .unwrap();
    let cases: [(&str, String, &str); 3] = [
        ("evil", outside.path().display().to_string(), "evil/x"),
        ("evil", "../../../../../../../..".into(), "evil/passwd"),
        ("lib", "usr/lib".into(), "lib/x/y"),
    ];
    for (link, target, entry) in cases {
        let mut t = Tar::new();
        t.dir("usr/lib/x/", 0o755)
            .symlink(link, &target)
            .file(entry, 0o644, b"pwned");
        let (c, r) = run(&t.bytes());
        let err = r.unwrap_err();
        assert!(
            matches!(&err, UnpackError::SymlinkParent { entry: e, parent, .. } if e == entry && parent == link),
            "{err}"
        );
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "wrote through the symlink"
        );
        assert!(!c.dest.exists());
        assert_no_temp_left(&c);
    }
}

#[test]
fn hard_links_must_target_earlier_entries_inside_the_layer() {
    let passwd_links = std::fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
    type Check = fn(&UnpackError) -> bool;
    let cases: [(&str, Check); 4] = [
        ("../../etc/passwd", |e| {
            matches!(e, UnpackError::LinkEscape { .. })
        }),
        ("/etc/passwd", |e| {
            matches!(e, UnpackError::LinkTarget { .. })
        }),
        ("later", |e| matches!(e, UnpackError::LinkTarget { .. })),
        ("dir", |e| matches!(e, UnpackError::LinkTarget { .. })),
    ];
    for (target, expected) in cases {
        let mut t = Tar::new();
        t.dir("dir/", 0o755)
            .hardlink("link", target)
            .file("later", 0o644, b"x");
        let (c, r) = run(&t.bytes());
        let err = r.unwrap_err();
        assert!(expected(&err), "{target}: {err}");
        assert!(err.to_string().contains(target), "{err}");
        assert!(!c.dest.exists());
        assert_no_temp_left(&c);
    }
    // Through a symlink inside the layer: refused as well.
    let mut t = Tar::new();
    t.symlink("etc", "/etc").hardlink("link", "etc/passwd");
    let (c, r) = run(&t.bytes());
    assert!(matches!(r, Err(UnpackError::SymlinkParent { .. })), "{r:?}");
    assert_no_temp_left(&c);
    assert_eq!(
        std::fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
        passwd_links
    );

    // An absolute name of an earlier entry is that entry.
    let mut t = Tar::new();
    t.file("etc/passwd", 0o644, b"root")
        .hardlink("etc/passwd-", "/etc/passwd");
    let (c, r) = run(&t.bytes());
    r.unwrap();
    let a = std::fs::metadata(c.dest.join("etc/passwd")).unwrap();
    let b = std::fs::metadata(c.dest.join("etc/passwd-")).unwrap();
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn devices_are_skipped_except_whiteouts() {
    let mut t = Tar::new();
    t.device("dev/null", EntryType::Char, 1, 3)
        .device("dev/sda", EntryType::Block, 8, 0)
        .device("gone", EntryType::Char, 0, 0)
        .file("dev/keep", 0o644, b"");
    let (c, r) = run(&t.bytes());
    r.unwrap();
    assert!(lstat(&c.dest.join("dev/null")).is_err());
    assert!(lstat(&c.dest.join("dev/sda")).is_err());
    assert!(c.dest.join("dev/keep").exists());
    let gone = lstat(&c.dest.join("gone")).unwrap();
    assert_eq!(
        (gone.st_mode & SFlag::S_IFMT.bits(), gone.st_rdev),
        (SFlag::S_IFCHR.bits(), 0)
    );
}

#[test]
fn gzip_and_zstd_decode_to_the_same_layer_and_diff_id() {
    let mut t = Tar::new();
    t.file("a", 0o644, b"hello")
        .file("b/c", 0o644, &[7u8; 100_000]);
    let mut tar = t.bytes();
    // Writers pad to a 10 KiB record after the end marker: the diff_id covers the padding.
    tar.resize(tar.len().div_ceil(10240) * 10240 + 10240, 0);
    let want = diff_id_of(&tar);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();

    for (bytes, compression) in [
        (tar.clone(), Compression::None),
        (gz, Compression::Gzip),
        (zst, Compression::Zstd),
    ] {
        let c = case(&bytes);
        let stats = unpack(&c, compression, false).unwrap();
        assert_eq!(stats.diff_id, want, "{compression:?}");
        assert_eq!(stats.size, 100_005);
        assert_eq!(std::fs::read(c.dest.join("a")).unwrap(), b"hello");
        assert_eq!(std::fs::read(c.dest.join("b/c")).unwrap().len(), 100_000);
    }
}

#[test]
fn corrupt_streams_fail_and_leave_nothing() {
    let mut t = Tar::new();
    t.file("a", 0o644, &[1u8; 5000]);
    let tar = t.bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let c = case(&gz[..gz.len() / 2]);
    let err = unpack(&c, Compression::Gzip, false).unwrap_err();
    assert!(
        matches!(
            err,
            UnpackError::ReadStream { .. } | UnpackError::EntryData { .. }
        ),
        "{err}"
    );
    assert!(!c.dest.exists());
    assert_no_temp_left(&c);
}

#[test]
fn pax_xattrs_are_applied_and_overlay_ones_dropped() {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.mime", &b"text/plain"[..]),
        ("SCHILY.xattr.user.overlay.opaque", &b"y"[..]),
        ("SCHILY.xattr.trusted.note", &b"t"[..]),
        ("mtime", &b"1500000000.25"[..]),
    ])
    .unwrap();
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_path("f").unwrap();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let (c, r) = run(&b.into_inner().unwrap());
    r.unwrap();
    let f = c.dest.join("f");
    assert_eq!(
        xattr::get(&f, "user.mime").unwrap().as_deref(),
        Some(&b"text/plain"[..])
    );
    assert_eq!(xattr::get(&f, "user.overlay.opaque").unwrap(), None);
    let m = std::fs::metadata(&f).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_500_000_000, 250_000_000));
    // trusted.* needs real root; in a user namespace it is skipped rather than failing.
    if nix::unistd::geteuid().is_root() && can_chown_to(1234) {
        let trusted = xattr::get(&f, "trusted.note").unwrap();
        assert!(trusted.is_none() || trusted.as_deref() == Some(&b"t"[..]));
    }
}

#[test]
fn long_names_and_existing_destinations_are_refused() {
    let long = format!("{}/f", "d".repeat(4100));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b""[..]).unwrap();
    let (c, r) = run(&b.into_inner().unwrap());
    assert!(
        matches!(r, Err(UnpackError::PathTooLong { len: 4102, .. })),
        "{r:?}"
    );
    assert_no_temp_left(&c);

    let mut t = Tar::new();
    t.file("a", 0o644, b"");
    let c = case(&t.bytes());
    std::fs::create_dir_all(&c.dest).unwrap();
    assert!(matches!(
        unpack(&c, Compression::None, false),
        Err(UnpackError::DestExists { .. })
    ));
}

#[test]
fn layer_label_prefers_the_digest() {
    assert_eq!(
        layer_label(Path::new("/d/blobs/sha256/abc123")),
        "sha256:abc123"
    );
    assert_eq!(layer_label(Path::new("/tmp/layer.tar")), "/tmp/layer.tar");
}
