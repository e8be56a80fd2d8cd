//! Exclusions, empty layers, devices and sockets, and the ways packing fails.

use std::path::PathBuf;

use super::*;

#[test]
fn excluded_runtime_paths_stay_out() {
    need_privileges();
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(&dir.path().join("upper"));
    t.dir("etc", 0o755, 0, 0)
        .file("etc/hosts", 0o644, 0, 0, b"")
        .file("etc/hostname", 0o644, 0, 0, b"")
        .file("etc/resolv.conf", 0o644, 0, 0, b"")
        .file("etc/app.conf", 0o644, 0, 0, b"kept")
        .dir("proc", 0o755, 0, 0)
        .dir("dev", 0o755, 0, 0)
        .file("dev/console", 0o600, 0, 0, b"")
        .whiteout("sys")
        .settle(T);
    let mut out = Vec::new();
    let options = PackOptions {
        compression: Compression::None,
        exclude: RUNTIME_PATHS.iter().map(|p| p.to_string()).collect(),
        compare_contents: true,
    };
    let stats = write_upper_tar(&t.root, &mut out, &options).unwrap();
    assert_eq!(names(&list_tar(&out)), vec!["etc/", "etc/app.conf"]);
    assert_eq!(
        stats,
        TarStats {
            entries: 2,
            content_bytes: 4
        }
    );
}

#[test]
fn an_empty_upper_dir_is_an_empty_layer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("upper")).unwrap();
    let blobs = BlobStore::new(dir.path().join("blobs"));
    let layer = pack_upper(&dir.path().join("upper"), &blobs, &opts(Compression::None)).unwrap();
    assert_eq!((layer.entries, layer.tar_size, layer.size), (0, 1024, 1024));
    // The empty tar every registry knows: 1024 zero bytes.
    assert_eq!(
        layer.diff_id,
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
}

/// A file that shrinks between its header and its content is reported, not padded.
#[test]
fn a_file_changing_while_packed_fails() {
    struct Shrinker {
        victim: PathBuf,
        out: Vec<u8>,
    }
    impl std::io::Write for Shrinker {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() == 512 && buf.starts_with(b"victim") {
                std::fs::write(&self.victim, b"short").unwrap();
            }
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let upper = dir.path().join("upper");
    std::fs::create_dir(&upper).unwrap();
    std::fs::write(upper.join("victim"), vec![1u8; 10_000]).unwrap();
    let mut out = Shrinker {
        victim: upper.join("victim"),
        out: Vec::new(),
    };
    let err = write_upper_tar(&upper, &mut out, &opts(Compression::None)).unwrap_err();
    assert!(matches!(err, PackError::Changed { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} changed while it was packed (stop or pause the container and try again)",
            upper.join("victim").display()
        )
    );
}

#[test]
fn a_failed_pack_leaves_no_blob_file() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::new(dir.path().join("blobs"));
    let err = pack_with(&blobs, Compression::Gzip, |out| {
        out.write_all(&[7u8; 100_000]).unwrap();
        Err(PackError::Changed { path: "/x".into() })
    })
    .unwrap_err();
    assert!(matches!(err, PackError::Changed { .. }));
    let left: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let err = pack_upper(
        &dir.path().join("missing"),
        &blobs,
        &opts(Compression::Gzip),
    )
    .unwrap_err();
    assert!(matches!(err, PackError::OpenRoot { .. }), "{err:?}");
    assert!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn permission_errors_say_where_to_run() {
    let err = PackError::Fs {
        op: "open",
        path: "/data/containers/c1/upper/etc/shadow".into(),
        source: std::io::Error::from_raw_os_error(libc::EACCES),
    };
    assert_eq!(
        err.to_string(),
        "cannot open /data/containers/c1/upper/etc/shadow while packing a layer (run it inside the container's user namespace, where its files are readable)"
    );
    let err = PackError::Fs {
        op: "read",
        path: "/x".into(),
        source: std::io::Error::from_raw_os_error(libc::EIO),
    };
    assert_eq!(err.to_string(), "cannot read /x while packing a layer");
}

/// Devices go in with their numbers (unpacking skips them, as Docker's rootless unpack
/// must); sockets cannot be in a tar and stay out.
#[test]
fn devices_are_written_and_sockets_left_out() {
    need_privileges();
    let dir = tempfile::tempdir().unwrap();
    let upper = dir.path().join("upper");
    std::fs::create_dir(&upper).unwrap();
    nix::sys::stat::mknod(
        &upper.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &upper.join("loop9"),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o660),
        nix::sys::stat::makedev(7, 9),
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(upper.join("app.sock")).unwrap();
    let bytes = upper_tar(&upper);
    let listed = list_tar(&bytes);
    assert_eq!(names(&listed), vec!["loop9", "null"]);
    let mut archive = tar::Archive::new(&bytes[..]);
    let devices: Vec<(EntryType, u32, u32)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                h.entry_type(),
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        devices,
        vec![(EntryType::Block, 7, 9), (EntryType::Char, 1, 3)]
    );
}
