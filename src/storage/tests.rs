use super::*;
use crate::image::Compression;
use crate::image::unpack::{UnpackOptions, unpack_layer};
use nix::sys::stat::{SFlag, lstat};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

#[test]
fn chain_ids_match_the_oci_definition() {
    let diff_ids = vec![digest('a'), digest('b'), digest('c')];
    let chain = chain_ids(&diff_ids);
    // Computed outside Rust: printf '%s %s' "$A" "$B" | sha256sum, and so on.
    assert_eq!(
        chain,
        vec![
            digest('a'),
            "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c".to_owned(),
            "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588".to_owned(),
        ]
    );
    let by_hand = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(format!("{} {}", diff_ids[0], diff_ids[1])))
    );
    assert_eq!(chain[1], by_hand);
    assert!(chain_ids(&[]).is_empty());
}

#[test]
fn driver_names_round_trip() {
    for kind in [
        DriverKind::Overlay,
        DriverKind::FuseOverlayfs,
        DriverKind::Vfs,
    ] {
        assert_eq!(kind.to_string().parse::<DriverKind>().unwrap(), kind);
    }
    assert_eq!(
        "fuse-overlayfs".parse::<DriverKind>().unwrap(),
        DriverKind::FuseOverlayfs
    );
    let err = "btrfs".parse::<DriverKind>().unwrap_err();
    assert!(err.to_string().contains("\"btrfs\""), "{err}");
}

#[test]
fn layer_paths_never_leave_the_store() {
    let s = Storage::new(Path::new("/data"), DriverKind::Vfs);
    let id = digest('d');
    assert_eq!(
        s.layer_dir(&id),
        Path::new("/data/layers").join("d".repeat(64)).join("diff")
    );
    for hostile in ["sha256:../../etc", "../../x", "sha256:", "sha256:/abs"] {
        let dir = s.layer_dir(hostile);
        assert_eq!(
            dir.parent().unwrap().parent().unwrap(),
            Path::new("/data/layers"),
            "{hostile}"
        );
        assert!(
            !dir.components()
                .any(|c| c == std::path::Component::ParentDir)
        );
        assert!(!s.has_layer(hostile));
        assert!(matches!(
            s.remove_layer(hostile),
            Err(StorageError::InvalidChainId { .. })
        ));
    }
}

/// Unpacks a tar built by `build` as layer `id` of the store.
fn add_layer(s: &Storage, id: &str, build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    let bytes = b.into_inner().unwrap();
    let blob = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(blob.path(), &bytes).unwrap();
    unpack_layer(
        blob.path(),
        Compression::None,
        &s.layer_dir(id),
        &UnpackOptions {
            ignore_chown_errors: true,
        },
    )
    .unwrap();
}

fn entry(
    b: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &str,
    link: &str,
    mode: u32,
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(data.len() as u64);
    if !link.is_empty() {
        h.set_link_name(link).unwrap();
    }
    b.append_data(&mut h, path, data).unwrap();
}

fn two_layers(s: &Storage) -> Vec<String> {
    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as L};
    let ids = vec![digest('1'), digest('2')];
    add_layer(s, &ids[0], |b| {
        entry(b, D, "a", "", 0o755, b"");
        entry(b, F, "a/file1", "", 0o644, b"one");
        entry(b, F, "a/file2", "", 0o4755, b"two");
        entry(b, D, "b", "", 0o755, b"");
        entry(b, F, "b/x", "", 0o644, b"x");
        entry(b, D, "c", "", 0o755, b"");
        entry(b, F, "c/deep", "", 0o644, b"d");
        entry(b, F, "h1", "", 0o600, b"linked");
        entry(b, H, "h2", "h1", 0o600, b"");
        entry(b, L, "s", "/abs/target", 0o777, b"");
        entry(b, F, "z", "", 0o644, b"file below");
        entry(b, D, "ro", "", 0o500, b"");
        entry(b, F, "ro/f", "", 0o400, b"r");
    });
    add_layer(s, &ids[1], |b| {
        entry(b, F, "a/.wh.file1", "", 0o644, b"");
        entry(b, D, "b", "", 0o750, b"");
        entry(b, F, "b/.wh..wh..opq", "", 0o644, b"");
        entry(b, F, "b/y", "", 0o644, b"y");
        entry(b, F, "c", "", 0o644, b"file over dir");
        entry(b, D, "z", "", 0o755, b"");
        entry(b, F, "z/in", "", 0o644, b"dir over file");
        entry(b, F, ".wh.never-existed", "", 0o644, b"");
    });
    ids
}

fn assert_no_whiteouts(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let st = lstat(&p).unwrap();
        assert!(
            !(st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFCHR.bits() && st.st_rdev == 0),
            "whiteout copied into the rootfs: {}",
            p.display()
        );
        if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() {
            assert!(
                xattr::get(&p, safefs::OPAQUE_XATTR).unwrap().is_none(),
                "{}",
                p.display()
            );
            assert_no_whiteouts(&p);
        }
    }
}

#[test]
fn vfs_applies_layers_with_whiteouts_and_opaque_dirs() {
    let data = tempfile::tempdir().unwrap();
    let s = Storage::new(data.path(), DriverKind::Vfs);
    let ids = two_layers(&s);
    let container = data.path().join("containers/c1");
    let rootfs = match s.prepare_rootfs(&container, &ids).unwrap() {
        Rootfs::Dir(p) => p,
        other => panic!("vfs gave {other:?}"),
    };
    assert_eq!(rootfs, container.join("rootfs"));
    let r = |p: &str| rootfs.join(p);

    assert!(
        lstat(&r("a/file1")).is_err(),
        "whiteout removed the lower file"
    );
    assert_eq!(std::fs::read(r("a/file2")).unwrap(), b"two");
    assert_eq!(
        std::fs::metadata(r("a/file2")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert!(!r("b/x").exists(), "opaque dir hid the lower contents");
    assert_eq!(std::fs::read(r("b/y")).unwrap(), b"y");
    assert_eq!(
        std::fs::metadata(r("b")).unwrap().mode() & 0o7777,
        0o750,
        "top layer's dir mode"
    );
    assert_eq!(std::fs::read(r("c")).unwrap(), b"file over dir");
    assert_eq!(std::fs::read(r("z/in")).unwrap(), b"dir over file");
    let (h1, h2) = (
        std::fs::metadata(r("h1")).unwrap(),
        std::fs::metadata(r("h2")).unwrap(),
    );
    assert_eq!(h1.ino(), h2.ino(), "hard links within a layer stay linked");
    assert_ne!(
        h1.ino(),
        std::fs::metadata(s.layer_dir(&ids[0]).join("h1"))
            .unwrap()
            .ino(),
        "a copy, not a link to the layer"
    );
    assert_eq!(
        std::fs::read_link(r("s")).unwrap(),
        Path::new("/abs/target")
    );
    let ro = std::fs::metadata(r("ro")).unwrap();
    assert_eq!(ro.mtime(), 1_600_000_000, "dir mtimes survive the copy");
    assert_eq!(std::fs::metadata(r("ro")).unwrap().mode() & 0o7777, 0o500);
    assert_eq!(std::fs::read(r("ro/f")).unwrap(), b"r");
    assert_no_whiteouts(&rootfs);
    let leftovers: Vec<_> = std::fs::read_dir(&container)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("rootfs")]);

    // A finished rootfs holds the container's changes: preparing again keeps it.
    std::fs::write(r("written-by-container"), b"").unwrap();
    assert_eq!(
        s.prepare_rootfs(&container, &ids).unwrap(),
        Rootfs::Dir(rootfs.clone())
    );
    assert!(r("written-by-container").exists());

    s.remove_container_files(&container).unwrap();
    assert!(!container.exists());
}

#[test]
fn overlay_and_fuse_get_directories_and_top_first_lowers() {
    let data = tempfile::tempdir().unwrap();
    let ids = two_layers(&Storage::new(data.path(), DriverKind::Overlay));
    for kind in [DriverKind::Overlay, DriverKind::FuseOverlayfs] {
        let s = Storage::new(data.path(), kind);
        let container = data.path().join(format!("containers/{kind}"));
        let got = s.prepare_rootfs(&container, &ids).unwrap();
        let (lowers, upper, work) = match (kind, got) {
            (
                DriverKind::Overlay,
                Rootfs::Overlay {
                    lowers,
                    upper,
                    work,
                },
            ) => (lowers, upper, work),
            (
                DriverKind::FuseOverlayfs,
                Rootfs::FuseOverlay {
                    lowers,
                    upper,
                    work,
                },
            ) => (lowers, upper, work),
            (_, other) => panic!("{kind} gave {other:?}"),
        };
        assert_eq!(lowers, vec![s.layer_dir(&ids[1]), s.layer_dir(&ids[0])]);
        assert_eq!(
            (upper.clone(), work.clone()),
            (container.join("upper"), container.join("work"))
        );
        for d in [upper, work, container.join("merged")] {
            assert!(d.is_dir(), "{}", d.display());
        }
    }
    let s = Storage::new(data.path(), DriverKind::Overlay);
    match s
        .prepare_rootfs(&data.path().join("containers/empty"), &[])
        .unwrap()
    {
        Rootfs::Overlay { lowers, .. } => {
            assert_eq!(lowers.len(), 1);
            assert_eq!(std::fs::read_dir(&lowers[0]).unwrap().count(), 0);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_layers_are_reported_and_layers_are_removed() {
    let data = tempfile::tempdir().unwrap();
    let s = Storage::new(data.path(), DriverKind::Vfs);
    let ids = two_layers(&s);
    let missing = digest('9');
    let err = s
        .prepare_rootfs(
            &data.path().join("containers/x"),
            &[ids[0].clone(), missing.clone()],
        )
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::LayerMissing { chain_id, .. } if *chain_id == missing),
        "{err}"
    );

    assert!(s.has_layer(&ids[0]));
    s.remove_layer(&ids[0]).unwrap();
    assert!(!s.has_layer(&ids[0]));
    assert!(!s.layer_dir(&ids[0]).parent().unwrap().exists());
    s.remove_layer(&ids[0]).unwrap();
    assert!(s.has_layer(&ids[1]));
    let names: Vec<_> = std::fs::read_dir(data.path().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("2".repeat(64))],
        "nothing renamed aside is left"
    );
}

#[test]
fn container_files_go_even_when_read_only() {
    let data = tempfile::tempdir().unwrap();
    let s = Storage::new(data.path(), DriverKind::Vfs);
    let c = data.path().join("containers/c");
    std::fs::create_dir_all(c.join("rootfs/usr/share/locked")).unwrap();
    std::fs::write(c.join("rootfs/usr/share/locked/f"), b"x").unwrap();
    std::fs::set_permissions(
        c.join("rootfs/usr/share/locked/f"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    for (dir, mode) in [
        ("rootfs/usr/share/locked", 0o000),
        ("rootfs/usr/share", 0o500),
        ("rootfs/usr", 0o555),
    ] {
        std::fs::set_permissions(c.join(dir), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    s.remove_container_files(&c).unwrap();
    assert!(!c.exists());
    s.remove_container_files(&c).unwrap();
}

/// Real root in the initial user namespace (CI): native overlay must work on this kernel.
fn real_root() -> bool {
    nix::unistd::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

#[test]
fn overlay_probe_mounts_checks_and_cleans_up() {
    let scratch = tempfile::tempdir().unwrap();
    let works = super::probe::probe_native_overlay(scratch.path());
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "probe left {left:?}");
    if real_root() {
        assert!(
            works,
            "native overlay with userxattr failed as real root (run with BURROW_LOG=debug for the step)"
        );
        assert_eq!(detect_driver(scratch.path()), DriverKind::Overlay);
    }
}

/// Path, type, mode, and contents or link target of everything under `root`.
fn snapshot(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.is_dir() {
                walk(root, &p, out);
                "dir".to_owned()
            } else if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else {
                format!("{:?}", std::fs::read(&p).unwrap())
            };
            out.push(format!("{rel} {:o} {what}", m.mode()));
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Detaches a test mount even when an assertion fails.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Needs root (CI) or a user + mount namespace: it mounts overlay for real.
#[test]
fn native_overlay_of_unpacked_layers_matches_vfs() {
    let data = tempfile::tempdir().unwrap();
    let ids = two_layers(&Storage::new(data.path(), DriverKind::Vfs));
    let vfs = Storage::new(data.path(), DriverKind::Vfs)
        .prepare_rootfs(&data.path().join("containers/v"), &ids)
        .unwrap();
    let Rootfs::Dir(vfs_root) = vfs else {
        panic!("{vfs:?}")
    };
    let c = data.path().join("containers/o");
    let Rootfs::Overlay {
        lowers,
        upper,
        work,
    } = Storage::new(data.path(), DriverKind::Overlay)
        .prepare_rootfs(&c, &ids)
        .unwrap()
    else {
        panic!("overlay driver gave another rootfs")
    };
    let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    let merged = c.join("merged");
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .unwrap_or_else(|e| {
        panic!("this test needs root or a user+mount namespace to mount overlay: {e}")
    });
    let _unmount = Unmount(merged.clone());
    let (seen, want) = (snapshot(&merged), snapshot(&vfs_root));
    // Never deletes through a mount: the layers below would be at stake.
    let err = Storage::new(data.path(), DriverKind::Overlay)
        .remove_container_files(&c)
        .unwrap_err();
    assert!(err.to_string().contains("still mounted"), "{err}");
    assert!(merged.join("a/file2").exists());
    let layers = Storage::new(data.path(), DriverKind::Overlay);
    assert!(
        layers.layer_dir(&ids[0]).join("a/file2").exists()
            && layers.layer_dir(&ids[1]).join("b/y").exists()
    );
    assert_eq!(
        seen, want,
        "overlay's view of the layers differs from the vfs copy"
    );
}
