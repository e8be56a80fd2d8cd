//! Rootfs drivers: native overlay in a user namespace, fuse-overlayfs, vfs.
//!
//! Layers are stored once, unpacked in overlay format (whiteouts as 0/0 character
//! devices, opaque directories marked with the overlay xattr), under
//! `DATA/layers/<chain-id hex>/diff`. Every driver reads that one format.
//!
//! - overlay / fuse-overlayfs: a container gets `DATA/containers/<id>/{upper,work,merged}`
//!   and the runtime mounts the layers (top-most first) under `merged`. Native overlay must be
//!   mounted with `userxattr` in the user namespace, which is what makes the
//!   `user.overlay.opaque` markers count; fuse-overlayfs (1.10 here) reads them too.
//! - vfs: a container gets `DATA/containers/<id>/rootfs`, a full copy of its layers with the
//!   whiteouts and opaque markers applied, bind-mounted as is.
//!
//! Layer and container files belong to ids of the user's subordinate range, so everything
//! here that writes or removes them runs inside the user namespace.
//!
//! For the runtime: the overlay mount options must fit in one page (4 KiB). With a long data
//! dir and many layers, pass the lowers relative to a working directory (chdir to
//! `DATA/layers` and use `<hex>/diff`) rather than as absolute paths.
//!
//! [`safefs`] holds the never-follow-a-symlink file operations that layer unpacking
//! (`image::unpack`) shares with the vfs copy.

mod probe;
pub mod safefs;
mod vfs;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::runtime::Rootfs;

pub use probe::detect_driver;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriverKind {
    Overlay,
    FuseOverlayfs,
    Vfs,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Overlay => "overlay",
            DriverKind::FuseOverlayfs => "fuse-overlayfs",
            DriverKind::Vfs => "vfs",
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DriverKind {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "overlay" => Ok(DriverKind::Overlay),
            "fuse-overlayfs" => Ok(DriverKind::FuseOverlayfs),
            "vfs" => Ok(DriverKind::Vfs),
            _ => Err(StorageError::UnknownDriver { name: s.to_owned() }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unknown storage driver \"{name}\" (use overlay, fuse-overlayfs or vfs)")]
    UnknownDriver { name: String },
    #[error("invalid layer chain id \"{chain_id}\" (expected sha256:<64 hex digits>)")]
    InvalidChainId { chain_id: String },
    #[error("layer {chain_id} is not in the store at {} (pull the image again)", path.display())]
    LayerMissing { chain_id: String, path: PathBuf },
    #[error("cannot remove layer {chain_id} at {}", path.display())]
    RemoveLayer {
        chain_id: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create the directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {op} {} while copying layer {chain_id} into a vfs rootfs", path.display())]
    Copy {
        chain_id: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move the finished rootfs into place at {}", path.display())]
    CommitRootfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move the container files at {} aside", path.display())]
    SetAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove the container files at {} (is its rootfs still mounted?)", path.display())]
    RemoveContainer {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove the container files at {}: {} is still mounted", path.display(), mount.display())]
    StillMounted { path: PathBuf, mount: PathBuf },
    #[error("overlay probe: cannot {step} at {}", path.display())]
    Probe {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// OCI ChainIDs: `c0 = d0`, `cn = sha256(c(n-1) + " " + dn)`, bottom layer first.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(prev) => {
                let digest = Sha256::digest(format!("{prev} {diff_id}").as_bytes());
                format!("sha256:{}", hex::encode(digest))
            }
        };
        out.push(next);
    }
    out
}

/// The hex of a well-formed `sha256:<64 hex>` chain id.
fn chain_hex(chain_id: &str) -> Option<&str> {
    let hex = chain_id.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

fn check_chain_id(chain_id: &str) -> Result<&str, StorageError> {
    chain_hex(chain_id).ok_or_else(|| StorageError::InvalidChainId {
        chain_id: chain_id.to_owned(),
    })
}

#[derive(Debug, Clone)]
pub struct Storage {
    data_dir: PathBuf,
    driver: DriverKind,
}

impl Storage {
    pub fn new(data_dir: &Path, driver: DriverKind) -> Storage {
        Storage {
            data_dir: data_dir.to_owned(),
            driver,
        }
    }

    pub fn driver(&self) -> DriverKind {
        self.driver
    }

    fn layers_root(&self) -> PathBuf {
        self.data_dir.join("layers")
    }

    /// `DATA/layers/<hex>`: the layer's diff and anything kept beside it.
    fn layer_home(&self, chain_id: &str) -> PathBuf {
        match chain_hex(chain_id) {
            Some(hex) => self.layers_root().join(hex),
            // Chain ids derive from image configs, which are remote input: a malformed one
            // must not become a path. Hashing it gives a name no real layer has.
            None => {
                let digest = Sha256::digest(chain_id.as_bytes());
                self.layers_root()
                    .join(format!("invalid-{}", hex::encode(digest)))
            }
        }
    }

    /// `DATA/layers/<hex>/diff`, where the layer is unpacked.
    pub fn layer_dir(&self, chain_id: &str) -> PathBuf {
        self.layer_home(chain_id).join("diff")
    }

    pub fn has_layer(&self, chain_id: &str) -> bool {
        chain_hex(chain_id).is_some()
            && self
                .layer_dir(chain_id)
                .symlink_metadata()
                .is_ok_and(|m| m.is_dir())
    }

    /// Removes the layer and everything beside it. The directory is first renamed aside so a
    /// half-removed layer is never taken for a present one. Missing is fine. Runs in the user
    /// namespace (the files belong to subordinate ids).
    pub fn remove_layer(&self, chain_id: &str) -> Result<(), StorageError> {
        let hex = check_chain_id(chain_id)?;
        let home = self.layer_home(chain_id);
        let doomed = self
            .layers_root()
            .join(format!(".remove-{hex}-{}", std::process::id()));
        let err = |path: &Path, source: io::Error| StorageError::RemoveLayer {
            chain_id: chain_id.to_owned(),
            path: path.to_owned(),
            source,
        };
        match std::fs::rename(&home, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(err(&home, e)),
        }
        safefs::remove_tree(&doomed).map_err(|e| err(&doomed, e.into()))
    }

    /// Prepares a container's root filesystem from its layers (bottom-most first).
    ///
    /// overlay and fuse-overlayfs: creates `upper`, `work` and `merged` in `container_dir`
    /// and returns the layer directories top-most first. vfs: copies the layers into
    /// `container_dir/rootfs` (built aside and renamed into place, so an existing one is
    /// complete and is returned as is). Runs in the user namespace.
    /// Whether [`Storage::prepare_rootfs`] must run inside the user namespace: vfs copies
    /// files owned by subordinate ids; the overlay drivers only make directories, which
    /// are ours (root in the namespace) when made outside it.
    pub fn prepare_needs_userns(&self) -> bool {
        self.driver == DriverKind::Vfs
    }

    pub fn prepare_rootfs(
        &self,
        container_dir: &Path,
        chain_ids_bottom_first: &[String],
    ) -> Result<Rootfs, StorageError> {
        for chain_id in chain_ids_bottom_first {
            check_chain_id(chain_id)?;
            if !self.has_layer(chain_id) {
                return Err(StorageError::LayerMissing {
                    chain_id: chain_id.clone(),
                    path: self.layer_dir(chain_id),
                });
            }
        }
        mkdir_all(container_dir)?;
        let layers: Vec<(String, PathBuf)> = chain_ids_bottom_first
            .iter()
            .map(|id| (id.clone(), self.layer_dir(id)))
            .collect();
        match self.driver {
            DriverKind::Overlay | DriverKind::FuseOverlayfs => {
                let mut lowers: Vec<PathBuf> =
                    layers.into_iter().rev().map(|(_, dir)| dir).collect();
                // overlay needs at least one lower layer; an image may have none.
                if lowers.is_empty() {
                    let empty = container_dir.join("empty");
                    mkdir_all(&empty)?;
                    lowers.push(empty);
                }
                let upper = container_dir.join("upper");
                let work = container_dir.join("work");
                for dir in [&upper, &work, &container_dir.join("merged")] {
                    mkdir_all(dir)?;
                }
                Ok(if self.driver == DriverKind::Overlay {
                    Rootfs::Overlay {
                        lowers,
                        upper,
                        work,
                    }
                } else {
                    Rootfs::FuseOverlay {
                        lowers,
                        upper,
                        work,
                    }
                })
            }
            DriverKind::Vfs => {
                let rootfs = container_dir.join("rootfs");
                if rootfs.symlink_metadata().is_err() {
                    vfs::build_rootfs(container_dir, &rootfs, &layers)?;
                }
                Ok(Rootfs::Dir(rootfs))
            }
        }
    }

    /// Removes `container_dir` and everything in it, also where directories are read-only
    /// (0500 and the like, as images and containers leave them). Runs in the user namespace.
    /// Missing is fine.
    /// Moves a stopped container's directory aside, in one rename, to a sibling
    /// `.removing-ID-PID` (PID: ours), so that it is gone from sight at once; deleting it
    /// ([`Storage::remove_container_files`]) takes as long as the disk does and can come
    /// later. A container whose rootfs is still mounted is refused, as by removal.
    pub fn set_aside(&self, container_dir: &Path) -> Result<PathBuf, StorageError> {
        if let Some(mount) = mount_below(container_dir) {
            return Err(StorageError::StillMounted {
                path: container_dir.to_owned(),
                mount,
            });
        }
        let name = container_dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let aside =
            container_dir.with_file_name(format!("{SET_ASIDE}{name}-{}", std::process::id()));
        std::fs::rename(container_dir, &aside).map_err(|source| StorageError::SetAside {
            path: container_dir.to_owned(),
            source,
        })?;
        Ok(aside)
    }

    /// Directories beside `container_dir` that a process set aside and did not live to
    /// delete.
    pub fn abandoned_beside(&self, container_dir: &Path) -> Vec<PathBuf> {
        let Some(parent) = container_dir.parent() else {
            return vec![];
        };
        let Ok(entries) = std::fs::read_dir(parent) else {
            return vec![];
        };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix(SET_ASIDE)
                    .and_then(|rest| rest.rsplit_once('-'))
                    .and_then(|(_, pid)| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            })
            .map(|e| e.path())
            .collect()
    }

    pub fn remove_container_files(&self, container_dir: &Path) -> Result<(), StorageError> {
        // Refuse before deleting anything: removing siblings first and then meeting the
        // live mount would leave a half-deleted container.
        if let Some(mount) = mount_below(container_dir) {
            return Err(StorageError::StillMounted {
                path: container_dir.to_owned(),
                mount,
            });
        }
        safefs::remove_tree(container_dir).map_err(|e| StorageError::RemoveContainer {
            path: container_dir.to_owned(),
            source: e.into(),
        })
    }
}

/// The prefix of a container directory set aside for deletion.
const SET_ASIDE: &str = ".removing-";

/// A mount point at or below `dir` in this mount namespace, if any.
fn mount_below(dir: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .find(|m| m.starts_with(&dir))
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mountinfo(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mkdir_all(path: &Path) -> Result<(), StorageError> {
    std::fs::create_dir_all(path).map_err(|source| StorageError::CreateDir {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
