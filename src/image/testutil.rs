//! Test helpers for the layer writer and the archives: file trees built with exact
//! metadata, and snapshots of trees to compare (what a user would see: types, modes,
//! owners, mtimes, contents, link targets, xattrs, which names share an inode).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, mknod, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat, mkfifo};
use sha2::{Digest, Sha256};

/// A tree under construction. Paths are relative to the root; parents must exist.
pub struct Tree {
    pub root: PathBuf,
}

impl Tree {
    pub fn new(root: &Path) -> Tree {
        std::fs::create_dir_all(root).unwrap();
        Tree {
            root: root.to_owned(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn own(&self, rel: &str, uid: u32, gid: u32) {
        fchownat(
            nix::fcntl::AT_FDCWD,
            &self.path(rel),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }

    fn chmod(&self, rel: &str, mode: u32) {
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn dir(&self, rel: &str, mode: u32, uid: u32, gid: u32) -> &Self {
        std::fs::create_dir(self.path(rel)).unwrap();
        self.own(rel, uid, gid);
        self.chmod(rel, mode);
        self
    }

    pub fn file(&self, rel: &str, mode: u32, uid: u32, gid: u32, data: &[u8]) -> &Self {
        std::fs::write(self.path(rel), data).unwrap();
        // chown clears setuid: owner first, then mode.
        self.own(rel, uid, gid);
        self.chmod(rel, mode);
        self
    }

    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        std::os::unix::fs::symlink(target, self.path(rel)).unwrap();
        self
    }

    pub fn hardlink(&self, rel: &str, existing: &str) -> &Self {
        std::fs::hard_link(self.path(existing), self.path(rel)).unwrap();
        self
    }

    pub fn fifo(&self, rel: &str, mode: u32) -> &Self {
        mkfifo(&self.path(rel), Mode::from_bits_truncate(mode)).unwrap();
        self.chmod(rel, mode);
        self
    }

    /// An overlay whiteout: a 0/0 character device.
    pub fn whiteout(&self, rel: &str) -> &Self {
        mknod(&self.path(rel), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        self
    }

    pub fn xattr(&self, rel: &str, name: &str, value: &[u8]) -> &Self {
        xattr::set(self.path(rel), name, value).unwrap();
        self
    }

    /// Marks a directory opaque the way native overlay does with `userxattr`.
    pub fn opaque(&self, rel: &str) -> &Self {
        self.xattr(rel, crate::storage::safefs::OPAQUE_XATTR, b"y")
    }

    pub fn remove(&self, rel: &str) -> &Self {
        let p = self.path(rel);
        if p.symlink_metadata().unwrap().is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
        self
    }

    /// Gives every entry below the root (and the root) the mtime `secs`, children first.
    pub fn settle(&self, secs: i64) -> &Self {
        settle(&self.root, secs);
        self
    }
}

pub fn settle(path: &Path, secs: i64) {
    let meta = path.symlink_metadata().unwrap();
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            settle(&entry.unwrap().path(), secs);
        }
    }
    let t = TimeSpec::new(secs, 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// What a snapshot records of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// Length and sha256 of a regular file's content.
    pub content: Option<(u64, String)>,
    pub link: Option<Vec<u8>>,
    pub rdev: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// The first name (in sorted order) of the inode, for entries with several names.
    pub inode_of: Option<String>,
}

/// Every entry below `root` (the root itself left out), by relative path.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Node>,
    inodes: &mut HashMap<(u64, u64), String>,
) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let m = path.symlink_metadata().unwrap();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "socket"
        };
        let content = ft.is_file().then(|| {
            let data = std::fs::read(&path).unwrap();
            (data.len() as u64, hex::encode(Sha256::digest(&data)))
        });
        let link = ft.is_symlink().then(|| {
            std::fs::read_link(&path)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        });
        let mut xattrs = BTreeMap::new();
        if ft.is_file() || ft.is_dir() {
            for n in xattr::list(&path).unwrap() {
                let n = n.to_string_lossy().into_owned();
                if n.starts_with("user.") || n == "security.capability" {
                    xattrs.insert(n.clone(), xattr::get(&path, &n).unwrap().unwrap());
                }
            }
        }
        if ft.is_char_device() && m.rdev() == 0 {
            // A whiteout: its mode, owner, time and inode mean nothing (overlay shares one
            // inode between all of them).
            out.insert(rel, whiteout_node());
            continue;
        }
        let inode_of = (!ft.is_dir() && m.nlink() > 1).then(|| {
            inodes
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: m.mtime(),
                content,
                link,
                rdev: m.rdev(),
                xattrs,
                inode_of,
            },
        );
        if ft.is_dir() {
            walk(root, &path, out, inodes);
        }
    }
}

fn whiteout_node() -> Node {
    Node {
        kind: "whiteout",
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: 0,
        content: None,
        link: None,
        rdev: 0,
        xattrs: BTreeMap::new(),
        inode_of: None,
    }
}

/// Asserts two snapshots are equal, naming the first differing entries.
pub fn assert_same_tree(got: &BTreeMap<String, Node>, want: &BTreeMap<String, Node>) {
    let mut problems = Vec::new();
    for (path, w) in want {
        match got.get(path) {
            None => problems.push(format!("missing {path}: {w:?}")),
            Some(g) if g != w => problems.push(format!("{path}:\n   got {g:?}\n  want {w:?}")),
            Some(_) => {}
        }
    }
    for path in got.keys().filter(|p| !want.contains_key(*p)) {
        problems.push(format!("unexpected {path}: {:?}", got[path]));
    }
    assert!(
        problems.is_empty(),
        "trees differ:\n{}",
        problems.join("\n")
    );
}

/// Asserts that an external program is installed (CI installs every one the tests use).
#[track_caller]
pub fn need_tool(name: &str) {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "needs {name} installed (.ci/run installs it)");
}

/// Asserts that this process may give files away to other ids and create whiteout devices
/// (root, or a user namespace with a range of ids mapped).
#[track_caller]
pub fn need_privileges() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"").unwrap();
    let chown = nix::unistd::chown(&file, Some(Uid::from_raw(1000)), Some(Gid::from_raw(1000)));
    let mknod = mknod(&dir.path().join("wh"), SFlag::S_IFCHR, Mode::empty(), 0);
    assert!(
        chown.is_ok() && mknod.is_ok(),
        "needs to own files as other ids and make whiteout devices: run as root (CI does)"
    );
}
