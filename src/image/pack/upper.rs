//! Walks an overlay upper directory: whiteouts in either driver's spelling become `.wh.`
//! entries, opaque directories get their marker, the rest is written as it is.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::stat::{FileStat, SFlag};

use super::PackError;
use super::emit::{OPAQUE_WHITEOUT, Packer, WHITEOUT_PREFIX, dup, file_type, join};
use crate::storage::safefs;

/// Opaque markers as xattrs: native overlay with `userxattr`, then fuse-overlayfs's
/// privileged and unprivileged spellings.
const OPAQUE_XATTRS: &[&str] = &[
    safefs::OPAQUE_XATTR,
    "trusted.overlay.opaque",
    "user.fuseoverlayfs.opaque",
];
/// aufs keeps hard-link bookkeeping under `.wh..wh.*`; it is nobody's file.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

pub(super) fn walk(packer: &mut Packer<'_>) -> Result<(), PackError> {
    let root = packer.open_root()?;
    if is_opaque(packer, root.as_fd(), b"")? {
        packer.opaque(b"")?;
    }
    dir(packer, root.as_fd(), b"")
}

/// Whether the directory `fd` (at `rel`) hides the layers below it.
fn is_opaque(packer: &Packer<'_>, fd: BorrowedFd<'_>, rel: &[u8]) -> Result<bool, PackError> {
    let file = dup(fd).map_err(|e| packer.fs_io_err("open", rel, e))?;
    for name in OPAQUE_XATTRS {
        match xattr::FileExt::get_xattr(&file, name) {
            Ok(Some(v)) if v.first() == Some(&b'y') => return Ok(true),
            Ok(_) => {}
            // Not supported, or (trusted.*) not readable here: not marked this way.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM)) => {}
            Err(e) => return Err(packer.fs_io_err("read the xattrs of", rel, e)),
        }
    }
    // fuse-overlayfs creates this file beside (or instead of) the xattr.
    Ok(safefs::lstat_at(fd, OPAQUE_WHITEOUT)
        .map_err(|e| packer.fs_err("inspect", rel, e))?
        .is_some())
}

fn dir(packer: &mut Packer<'_>, fd: BorrowedFd<'_>, rel: &[u8]) -> Result<(), PackError> {
    let mut names = safefs::list_dir(fd).map_err(|e| packer.fs_err("list", rel, e))?;
    names.sort();
    let mut whiteouts: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut entries: Vec<(Vec<u8>, FileStat)> = Vec::new();
    for name in names {
        if name.starts_with(AUFS_META_PREFIX) {
            // The opaque marker (handled by the caller) and aufs bookkeeping.
            continue;
        }
        let Some(st) = safefs::lstat_at(fd, &name).map_err(|e| packer.fs_err("inspect", rel, e))?
        else {
            continue; // gone since the listing
        };
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            // An empty file is fuse-overlayfs's whiteout where it may not create devices.
            // Anything else so named is its bookkeeping: rootless, it leaves a whiteout
            // device `.wh..opq` in directories it made opaque.
            if file_type(&st) == SFlag::S_IFREG.bits() && !matches!(hidden, b"" | b"." | b"..") {
                whiteouts.insert(hidden.to_vec());
            } else {
                tracing::debug!(path = ?packer.path(&join(rel, &name)), "skipping fuse-overlayfs bookkeeping");
            }
            continue;
        }
        if safefs::is_whiteout(&st) {
            whiteouts.insert(name);
        } else {
            entries.push((name, st));
        }
    }
    for hidden in &whiteouts {
        // A name both deleted and present was deleted and then made again: the new entry
        // replaces the lower one anyway.
        let present = entries
            .binary_search_by(|(n, _)| n.as_slice().cmp(hidden))
            .is_ok();
        if !present && !packer.excluded(&join(rel, hidden)) {
            packer.whiteout(rel, hidden)?;
        }
    }
    for (name, st) in &entries {
        let child = join(rel, name);
        if packer.excluded(&child) {
            continue;
        }
        if let Some(sub) = packer.entry(fd, name, &child, st)? {
            if is_opaque(packer, sub.as_fd(), &child)? {
                packer.opaque(&child)?;
            }
            dir(packer, sub.as_fd(), &child)?;
        }
    }
    Ok(())
}
