//! The host against real components: the built-in `none` driver and the hostile plugins of
//! tests/plugins (built here for wasm32-wasip2, once per test run).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::*;

fn container() -> Container {
    Container {
        id: "c0ffee".repeat(10) + "abcd",
        name: "web".into(),
        image_id: "sha256:1234".into(),
        image_name: "alpine".into(),
        command: "sh".into(),
        hostname: "c0ffeec0ffee".into(),
        created_ns: 1_700_000_000_000_000_000,
        tag: None,
        attrs: vec![],
        host: HostInfo {
            hostname: "host".into(),
            pid: std::process::id(),
            utc_offset_secs: 0,
        },
    }
}

fn ctx(opts: &[(&str, &str)]) -> LogContext {
    LogContext {
        container: container(),
        opts: opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        log_dir: None,
    }
}

fn entry(line: &str) -> Entry {
    Entry {
        time_ns: 1_700_000_000_000_000_000,
        source: Source::Stdout,
        line: line.as_bytes().to_vec(),
        partial: None,
        attrs: vec![],
    }
}

/// The hostile plugins' .wasm files, built with cargo on first use.
fn hostile(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(build_hostile)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(format!("hostile_{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn build_hostile() -> Result<PathBuf, String> {
    let manifest = Path::new(env!("BURROW_SOURCE_DIR")).join("tests/plugins/Cargo.toml");
    let target_dir = PathBuf::from(env!("BURROW_PLUGINS_TARGET_DIR"));
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args([
        "build",
        "--release",
        "--quiet",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(&manifest)
    .arg("--target-dir")
    .arg(&target_dir);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k.starts_with("RUSTC")
            || k == "RUSTFLAGS"
        {
            cmd.env_remove(&key);
        }
    }
    let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building {} failed:\n{}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(target_dir.join("wasm32-wasip2/release"))
}

/// A host whose cache persists across tests and runs (in the build's target directory):
/// unoptimised test builds of cranelift take seconds per component.
fn shared_host() -> PluginHost {
    let dir = Path::new(env!("BURROW_PLUGINS_TARGET_DIR")).with_file_name("wasm-test-cache");
    PluginHost::new(dir).unwrap()
}

fn host() -> (tempfile::TempDir, PluginHost) {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::new(dir.path().join("wasm")).unwrap();
    (dir, host)
}

#[test]
fn builtin_none_loads_validates_and_takes_writes() {
    let (_dir, host) = host();
    assert!(
        host.builtin_names().contains(&"none".to_string()),
        "{:?}",
        host.builtin_names()
    );
    let none = host.log_driver("none").unwrap();
    assert_eq!(none.info().name, "none");
    assert!(!none.can_read());
    let err = none
        .validate(&[("max-size".into(), "1m".into())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown log opt 'max-size' for none log driver"
    );
    assert!(matches!(err, PluginError::Config(_)));
    none.validate(&[]).unwrap();

    let mut logger = none.open_logger(ctx(&[])).unwrap();
    let batch: Vec<Entry> = (0..1000).map(|i| entry(&format!("line {i}"))).collect();
    logger.write(&batch).unwrap();
    logger.flush().unwrap();
    let err = none
        .open_reader(
            ctx(&[]),
            ReadOpts {
                since_ns: None,
                until_ns: None,
                tail: None,
            },
        )
        .err()
        .unwrap();
    assert!(
        matches!(&err, PluginError::Unsupported { msg, .. } if msg.contains("does not support reading")),
        "{err}"
    );

    let err = host.log_driver("gelf").unwrap_err();
    assert!(matches!(err, PluginError::UnknownDriver { .. }), "{err}");
}

#[test]
fn a_second_host_loads_from_the_cache_without_compiling() {
    let (dir, first) = host();
    first.log_driver("none").unwrap();
    assert_eq!(first.compile_count(), 1);
    let cache = dir.path().join("wasm");
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let files: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let artifact = &files[0];
    assert!(artifact.extension().is_some_and(|e| e == "cwasm"));
    let meta = std::fs::metadata(artifact).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let second = PluginHost::new(cache.clone()).unwrap();
    second
        .log_driver("none")
        .unwrap()
        .open_logger(ctx(&[]))
        .unwrap()
        .write(&[entry("x")])
        .unwrap();
    assert_eq!(second.compile_count(), 0);
    let again = std::fs::metadata(artifact).unwrap();
    assert_eq!(
        (again.mtime(), again.mtime_nsec(), again.ino()),
        (meta.mtime(), meta.mtime_nsec(), meta.ino())
    );
}

#[test]
fn a_corrupt_cached_artifact_is_recompiled() {
    let (dir, first) = host();
    first.log_driver("none").unwrap();
    let cache = dir.path().join("wasm");
    let artifact = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Replaced, not rewritten in place: the first host still has the artifact mapped, and
    // truncating a mapped file would crash it (burrow itself only ever renames over them).
    let tmp = cache.join("corrupt.tmp");
    std::fs::write(&tmp, b"\x7fELF not really").unwrap();
    std::fs::rename(&tmp, &artifact).unwrap();
    let second = PluginHost::new(cache).unwrap();
    second.log_driver("none").unwrap().validate(&[]).unwrap();
    assert_eq!(second.compile_count(), 1);
    assert!(std::fs::read(&artifact).unwrap().len() > 1000);
}

#[test]
fn an_endless_loop_times_out_and_the_next_write_runs_on_a_fresh_instance() {
    let host = shared_host();
    let spin = host
        .load_log_driver(&hostile("spin"), Grants::default())
        .unwrap();
    let mut logger = spin.open_logger(ctx(&[])).unwrap();
    let started = Instant::now();
    let err = logger.write(&[entry("spin")]).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            PluginError::Timeout {
                call: "logger.write",
                secs: 5,
                ..
            }
        ),
        "{err}"
    );
    // Timeouts are not retried: one deadline, not two.
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert!(!logger.is_live());
    logger.write(&[entry("fine")]).unwrap();
    assert!(logger.is_live());
}

#[test]
fn a_memory_bomb_traps_cleanly_and_the_host_survives() {
    let host = shared_host();
    let bomb = host
        .load_log_driver(&hostile("bomb"), Grants::default())
        .unwrap();
    let mut logger = bomb.open_logger(ctx(&[])).unwrap();
    logger.write(&[entry("a")]).unwrap();
    let started = Instant::now();
    let err = logger.write(&[entry("bomb")]).unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Trap {
                call: "logger.write",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the cap, not the deadline, stopped it"
    );
    // Both the write and its one retry trapped; the next call starts a fresh instance.
    assert!(!logger.is_live());
    logger.write(&[entry("report")]).unwrap();
    let report = logger.flush().unwrap_err();
    assert!(
        matches!(&report, PluginError::Internal { msg, .. } if msg == "writes=1"),
        "{report}"
    );
}

fn snoop_report(grants: Grants, opts: &[(&str, &str)]) -> String {
    let host = shared_host();
    let snoop = host.load_log_driver(&hostile("snoop"), grants).unwrap();
    let mut logger = snoop.open_logger(ctx(opts)).unwrap();
    match logger.write(&[entry("x")]) {
        Err(PluginError::Internal { msg, .. }) => msg,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_snoop_without_grants_reaches_nothing() {
    let report = snoop_report(
        Grants::default(),
        &[("syslog-address", "tcp://127.0.0.1:22")],
    );
    assert!(report.starts_with("succeeded: [];"), "{report}");
    for denied in [
        "endpoints tcp://127.0.0.1:22: Error::Denied(",
        "http metadata: Error::Denied(",
        "secret aws: Error::Denied(",
    ] {
        assert!(report.contains(denied), "{denied} missing from {report}");
    }
    assert!(
        report.contains("read /etc/passwd:") && report.contains("wasi tcp 127.0.0.1:22:"),
        "{report}"
    );
}

#[test]
fn a_snoop_with_grants_still_reaches_only_what_options_name() {
    let grants = Grants {
        log_dir: true,
        network: true,
        http: true,
        secrets: vec![],
    };
    let report = snoop_report(grants, &[("syslog-address", "tcp://127.0.0.1:5140")]);
    assert!(report.starts_with("succeeded: [];"), "{report}");
    assert!(
        report.contains(
            "endpoints tcp://127.0.0.1:22: Error::Denied(\"tcp://127.0.0.1:22: no log option"
        ),
        "{report}"
    );
    assert!(
        report.contains("endpoints unix:///etc/passwd: Error::Denied("),
        "{report}"
    );
    assert!(report.contains("link-local"), "{report}");
}

#[test]
fn a_plugin_for_another_abi_is_refused_with_the_versions() {
    let host = shared_host();
    let err = host
        .load_log_driver_as("v2", &hostile("v2"), Grants::all())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin \"v2\" was built for burrow:plugin@2.0.0; this burrow supports burrow:plugin@1.x (rebuild it against burrow-plugin-sdk 0.1)"
    );
    let err = host
        .load_log_driver(b"\0asm not really", Grants::all())
        .unwrap_err();
    assert!(matches!(err, PluginError::Compile { .. }), "{err}");
}

/// Figures for the report: `cargo test --release plugin::tests::figures -- --ignored --nocapture`.
#[test]
#[ignore = "prints figures for a report; run it with --ignored --nocapture"]
fn figures() {
    let (_dir, host) = host();
    let wasm = builtin::BUILTIN_PLUGINS
        .iter()
        .find(|(k, _)| *k == "log-none")
        .unwrap()
        .1;
    let t = Instant::now();
    host.shared.component("log-none", wasm).unwrap();
    let cold = t.elapsed();
    let t = Instant::now();
    let n = 20;
    for _ in 0..n {
        host.shared.component("log-none", wasm).unwrap();
    }
    let cached = t.elapsed() / n;
    let none = host.log_driver("none").unwrap();
    let t = Instant::now();
    for _ in 0..n {
        drop(none.open_logger(ctx(&[])).unwrap());
    }
    let open = t.elapsed() / n;
    let mut logger = none.open_logger(ctx(&[])).unwrap();
    let batch: Vec<Entry> = (0..1000).map(|i| entry(&format!("{i:>99}"))).collect();
    logger.write(&batch).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        logger.write(&batch).unwrap();
    }
    let write = t.elapsed() / n;
    println!(
        "cold compile {cold:?}; cached load {cached:?}; instantiate+open(+close) {open:?}; write 1000x100B {write:?}"
    );
}

/// The log directory grant end to end, through the built-in json-file driver: the logger
/// writes into the preopened directory, a reader reads it back (read-only), and a driver
/// given no directory cannot write anywhere.
#[test]
fn json_file_writes_into_its_log_dir_and_reads_back() {
    let host = shared_host();
    assert!(
        host.builtin_names().iter().any(|n| n == "json-file"),
        "the json-file plugin is not built in: {:?}",
        host.builtin_names()
    );
    let json = host.log_driver("json-file").unwrap();
    assert!(json.can_read() && json.info().needs.log_dir);
    let logs = tempfile::tempdir().unwrap();
    let with_dir = LogContext {
        log_dir: Some(logs.path().to_path_buf()),
        ..ctx(&[])
    };
    let mut logger = json.open_logger(with_dir.clone()).unwrap();
    logger.write(&[entry("one"), entry("two")]).unwrap();
    logger.flush().unwrap();
    drop(logger);
    let files: Vec<_> = std::fs::read_dir(logs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");

    let ro = ReadOpts {
        since_ns: None,
        until_ns: None,
        tail: None,
    };
    let mut reader = json.open_reader(with_dir, ro).unwrap();
    let lines: Vec<Vec<u8>> = reader
        .next(100)
        .unwrap()
        .into_iter()
        .map(|e| e.line)
        .collect();
    assert_eq!(lines, [b"one".to_vec(), b"two".to_vec()]);

    assert!(
        json.open_logger(ctx(&[])).is_err(),
        "no log directory: nowhere to write"
    );
}

fn network(name: &str, subnet: Option<&str>) -> Network {
    Network {
        id: "5f3b".repeat(16),
        name: name.into(),
        driver: "bridge".into(),
        iface: None,
        subnets: subnet
            .map(|cidr| {
                vec![Subnet {
                    cidr: cidr.into(),
                    gateway: None,
                }]
            })
            .unwrap_or_default(),
        ipv6: false,
        internal: false,
        dns: true,
        options: vec![],
    }
}

fn facts(rootless: bool) -> HostFacts {
    HostFacts {
        rootless,
        links: vec![],
        used_subnets: vec!["172.17.0.0/16".into()],
    }
}

#[test]
fn builtin_network_drivers_fill_in_networks_and_compute_plans() {
    let host = shared_host();
    let mut names = host.builtin_network_drivers();
    names.sort();
    assert_eq!(names, ["bridge", "container", "host", "macvlan", "none"]);
    let bridge = host.network_driver("bridge").unwrap();
    assert_eq!(bridge.info().name, "bridge");
    // Defaults come from the driver: a free pool (172.17/16 is taken) and its first host.
    let n = bridge.create(&network("n1", None), &facts(true)).unwrap();
    assert_eq!(n.subnets.len(), 1);
    assert_eq!(n.subnets[0].cidr, "172.18.0.0/16");
    assert_eq!(n.subnets[0].gateway.as_deref(), Some("172.18.0.1"));
    // The plan is data: a bridge, a veth pair into the container, an address.
    let attach = Attach {
        container_id: "c0ffee".repeat(10) + "abcd",
        name: "web".into(),
        hostname: None,
        network: n.clone(),
        ifname: "eth0".into(),
        ips: vec!["172.18.0.2".into()],
        mac: None,
        aliases: vec![],
        ports: vec![],
    };
    let plan = bridge.setup(&attach, &facts(true)).unwrap();
    assert!(!plan.ops.is_empty());
    assert_eq!(plan.ifaces[0].name, "eth0");
    assert_eq!(plan.ifaces[0].mac, "02:42:ac:12:00:02");
    assert!(
        !bridge
            .teardown(&attach, &facts(true))
            .unwrap()
            .ops
            .is_empty()
    );
    // Refusals are the driver's, shown verbatim.
    let mut bad = network("n2", None);
    bad.options = vec![Kv {
        key: "bogus".into(),
        value: "1".into(),
    }];
    let e = bridge.create(&bad, &facts(true)).unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
    let macvlan = host.network_driver("macvlan").unwrap();
    let mut m = network("m", Some("10.89.4.0/24"));
    m.driver = "macvlan".into();
    m.options = vec![Kv {
        key: "parent".into(),
        value: "eth0".into(),
    }];
    let e = macvlan.create(&m, &facts(true)).unwrap_err();
    assert!(e.to_string().contains("run burrow as root"), "{e}");
    // A log driver is not a network driver, and the other way round.
    assert!(matches!(
        host.network_driver("json-file"),
        Err(PluginError::UnknownNetworkDriver { .. })
    ));
    let e = host
        .load_network_driver(&hostile("spin"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a network driver"), "{e}");
}
