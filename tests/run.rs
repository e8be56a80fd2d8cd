//! `run`, `create`, `start`, `ps`, `rm`, `inspect` as an unprivileged user.

mod common;

use common::{User, fixture};

#[test]
fn run_prints_output_and_returns_the_exit_status() {
    let u = User::new("run_basic");
    let img = u.pull("busybox");
    let o = u.run(&img, &["echo", "hello", "world"]);
    o.ok();
    assert_eq!(o.stdout, "hello world\n");
    u.run(&img, &["sh", "-c", "exit 3"]).code(3);
    // --rm left nothing behind.
    let ps = u.burrow(&["ps", "-a", "-q"]);
    assert_eq!(ps.ok().stdout, "");
}

#[test]
fn exit_codes_follow_docker() {
    let u = User::new("exit_codes");
    let img = u.pull("busybox");
    u.run(&img, &["no-such-command"])
        .code(127)
        .stderr_has("no-such-command")
        .one_line_error();
    u.run(&img, &["/etc/passwd"]).code(126).one_line_error();
    u.burrow(&["run", "--no-such-flag", &img]).code(125);
    u.burrow(&["run", "--rm", "-w", "relative", &img, "true"])
        .code(125)
        .stderr_has("absolute path")
        .one_line_error();
}

#[test]
fn the_container_is_isolated() {
    let u = User::new("isolation");
    let img = u.pull("busybox");
    let o = u.run(
        "--network=none",
        &[
            &img,
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; echo pid=$$; ls /proc | grep -c '^[0-9]'; \
             cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; \
             grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
        ],
    );
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {o:#?}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &u.uid.to_string(), "1"], "{o:#?}");
    assert!(
        lines[2].split_whitespace().collect::<Vec<_>>() == ["1", "400000", "65536"],
        "subordinate range mapped: {o:#?}"
    );
    assert_eq!(lines[3], "pid=1");
    assert!(o.stdout.contains("\nlo\n"), "only lo: {o:#?}");
    assert!(!o.stdout.contains("eth0"), "{o:#?}");
    assert!(
        o.stdout.contains("CapEff:\t00000000a80425fb"),
        "Docker's caps: {o:#?}"
    );
    assert!(o.stdout.contains("NoNewPrivs:\t1"), "{o:#?}");
    assert!(o.stdout.contains("Seccomp:\t2"), "{o:#?}");
    // A new user namespace inside is refused by the seccomp filter / capabilities.
    u.run(&img, &["unshare", "-U", "true"]).code(1);
    // /dev is minimal, /sys read-only, masked /proc paths are empty.
    let o = u.run(
        &img,
        &[
            "sh",
            "-c",
            "ls /dev | tr '\\n' ' '; echo; touch /sys/x 2>&1 || echo sys-ro; wc -c < /proc/keys",
        ],
    );
    o.ok();
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm",
    ] {
        assert!(o.stdout.contains(dev), "/dev/{dev} missing: {o:#?}");
    }
    assert!(o.stdout.contains("sys-ro"), "{o:#?}");
    assert!(
        o.stdout.trim_end().ends_with("\n0"),
        "/proc/keys masked: {o:#?}"
    );
}

#[test]
fn changes_stay_in_their_container() {
    let u = User::new("changes");
    let img = u.pull("busybox");
    u.burrow(&[
        "run",
        "--name",
        "writer",
        &img,
        "sh",
        "-c",
        "echo x > /etc/changed",
    ])
    .ok();
    u.run(&img, &["test", "!", "-e", "/etc/changed"]).ok();
    // Starting the stopped container again sees its own change.
    u.burrow(&["start", "-a", "writer"]).ok();
    let o = u.burrow(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(o.ok().stdout.starts_with("writer Exited (0)"), "{o:#?}");
    let o = u.burrow(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}} {{.Name}}",
        "writer",
    ]);
    assert_eq!(o.ok().stdout, "0 /writer\n");
    u.burrow(&["rm", "writer"]).ok();
    u.burrow(&["inspect", "writer"])
        .code(1)
        .stderr_has("no such object");
    // No container directory is left.
    let containers = std::fs::read_dir(u.data_dir().join("containers"))
        .unwrap()
        .count();
    assert_eq!(containers, 0);
}

#[test]
fn image_config_is_merged_like_docker() {
    let u = User::new("merge");
    let entry = u.pull("entry");
    assert_eq!(u.run(&entry, &[]).ok().stdout, "ep c1 c2\n");
    assert_eq!(u.run(&entry, &["x"]).ok().stdout, "ep x\n");
    let o = u.burrow(&["run", "--rm", "--entrypoint", "/bin/echo", &entry]);
    assert_eq!(o.ok().stdout, "\n", "--entrypoint drops the image's Cmd");
    let wu = u.pull("workuser");
    let o = u.run(
        &wu,
        &["sh", "-c", "pwd; id -u; id -g; echo $FOO; echo $HOME"],
    );
    assert_eq!(o.ok().stdout, "/srv/work\n1000\n1000\nbar\n/home/app\n");
}

#[test]
fn run_flags_set_env_user_workdir_hostname_readonly() {
    let u = User::new("flags");
    let img = u.pull("busybox");
    let envfile = u.home.join("vars.env");
    std::fs::write(&envfile, "# comment\nFROMFILE=f\nOVER=file\n").unwrap();
    let envfile = envfile.to_string_lossy().into_owned();
    let o = u.burrow(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        &envfile,
        "-e",
        "OVER=cli",
        "-w",
        "/tmp/new",
        "-u",
        "app:extra",
        "--hostname",
        "box",
        &img,
        "sh",
        "-c",
        "echo $A $FROMFILE $OVER; pwd; id -u; id -g; hostname; cat /etc/hostname",
    ]);
    assert_eq!(o.ok().stdout, "1 f cli\n/tmp/new\n1000\n2000\nbox\nbox\n");
    u.burrow(&["run", "--rm", "-u", "nosuchuser", &img, "true"])
        .code(125)
        .stderr_has("nosuchuser")
        .one_line_error();
    let o = u.burrow(&[
        "run",
        "--rm",
        "--read-only",
        &img,
        "sh",
        "-c",
        "touch /x || echo ro; touch /tmp/y 2>/dev/null || echo tmp-ro",
    ]);
    assert!(o.ok().stdout.starts_with("ro\n"), "{o:#?}");
    // --network host keeps the host's hostname and interfaces.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let o = u.burrow(&["run", "--rm", "--network", "host", &img, "hostname"]);
    assert_eq!(o.ok().stdout, host);
    u.burrow(&["run", "--rm", "--network", "bogus", &img, "true"])
        .code(125)
        .one_line_error();
}

#[test]
fn create_then_start() {
    let u = User::new("create_start");
    let img = u.pull("busybox");
    let o = u.burrow(&["create", "--name", "later", &img, "echo", "started"]);
    let id = o.ok().stdout.trim().to_string();
    assert_eq!(id.len(), 64);
    let o = u.burrow(&[
        "ps",
        "-a",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Status}} {{.Image}}",
    ]);
    assert_eq!(o.ok().stdout, format!("{id} Created {img}\n"));
    assert_eq!(
        u.burrow(&["start", "-a", &id[..8]]).ok().stdout,
        "started\n"
    );
    u.burrow(&["create", "--name", "later", &img])
        .code(125)
        .stderr_has("already in use");
    u.burrow(&["rm", "later"]).ok();
    u.burrow(&["rm", "later"])
        .code(1)
        .stderr_has("no such container");
    u.burrow(&["rm", "-f", "later"]).ok();
}

#[test]
fn a_user_without_subordinate_ids_runs_with_one_id() {
    let u = User::without_subids("nosub");
    let img = fixture("busybox");
    let o = u.burrow(&[
        "run",
        "--rm",
        "--tls-verify=false",
        &img,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    o.ok();
    assert!(o.stderr.contains("warning: cannot map user ids"), "{o:#?}");
    assert!(o.stderr.contains("/etc/subuid"), "{o:#?}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(lines.len(), 2, "only one id mapped: {o:#?}");
    // Files owned by other ids in the image still unpack (owned by root inside).
    let o = u.burrow(&[
        "run",
        "--rm",
        "--tls-verify=false",
        &fixture("layered"),
        "cat",
        "/home/app/owned",
    ]);
    assert_eq!(o.ok().stdout, "mine\n");
}

#[test]
fn cron_like_environment() {
    // No XDG_RUNTIME_DIR, PATH=/usr/bin:/bin, no TTY, stdin from /dev/null.
    let mut u = User::new("cron");
    u.env.clear();
    let _ = std::fs::remove_dir_all(format!("/tmp/burrow-{}", u.uid));
    let img = u.pull("busybox");
    let runtime = std::path::PathBuf::from(format!("/tmp/burrow-{}", u.uid));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let cmd = u.command(&["run", "--rm", &img, "echo", &format!("job{i}")]);
            std::thread::spawn(move || {
                let mut cmd = cmd;
                cmd.output().unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let o = h.join().unwrap();
        assert!(o.status.success(), "{o:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("job{i}\n"));
    }
    let meta = std::fs::metadata(&runtime).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.uid(), u.uid);
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(u.burrow(&["ps", "-a", "-q"]).ok().stdout, "");
}

#[test]
fn root_uses_its_own_state() {
    let root = User::named("root", "rootful");
    let data = root.home.join("data");
    let run = root.home.join("run");
    let (d, r) = (data.to_string_lossy(), run.to_string_lossy());
    let img = fixture("busybox");
    let o = root.burrow(&[
        "--root",
        &d,
        "--runroot",
        &r,
        "run",
        "--rm",
        "--tls-verify=false",
        &img,
        "id",
        "-u",
    ]);
    assert_eq!(o.ok().stdout, "0\n");
    assert!(data.join("state.db").exists());
}

#[test]
fn parallel_pulls_and_runs_share_one_store() {
    let u = User::new("parallel");
    let images = [
        "busybox", "layered", "busybox", "layered", "entry", "busybox",
    ];
    let handles: Vec<_> = images
        .iter()
        .map(|name| {
            let img = fixture(name);
            let mut cmd = u.command(&["run", "--rm", "--tls-verify=false", &img, "true"]);
            std::thread::spawn(move || cmd.output().unwrap())
        })
        .collect();
    for h in handles {
        let o = h.join().unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    let o = u.burrow(&["images", "--format", "{{.Repository}}"]);
    let mut names: Vec<&str> = o.ok().stdout.lines().collect();
    names.sort();
    let reg = common::registry();
    assert_eq!(
        names,
        [
            format!("{reg}/fixtures/busybox"),
            format!("{reg}/fixtures/entry"),
            format!("{reg}/fixtures/layered")
        ]
    );
    assert_eq!(u.burrow(&["ps", "-a", "-q"]).ok().stdout, "");
    for e in std::fs::read_dir(u.data_dir().join("layers")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert_eq!(name.len(), 64, "leftover in the layer store: {name}");
    }
}

#[test]
fn stdin_reaches_the_container_only_with_i() {
    let u = User::new("stdin");
    let img = u.pull("busybox");
    let o = u.burrow_stdin(
        &[
            "run",
            "--rm",
            "-i",
            &img,
            "sh",
            "-c",
            "tr a-z A-Z; echo done",
        ],
        "piped text\n",
    );
    assert_eq!(o.ok().stdout, "PIPED TEXT\ndone\n");
    let o = u.burrow_stdin(
        &["run", "--rm", &img, "sh", "-c", "cat; echo done"],
        "ignored\n",
    );
    assert_eq!(o.ok().stdout, "done\n");
}

#[test]
fn burrow_timing_writes_one_timeline_across_the_processes() {
    let mut u = User::new("run_timing");
    let img = u.pull("busybox");
    let file = u.home.join("timeline");
    u.env
        .push(("BURROW_TIMING".into(), file.display().to_string()));
    u.burrow(&["run", "--rm", "--network", "none", &img, "true"])
        .ok();
    let text = std::fs::read_to_string(&file).unwrap();
    let marks: Vec<(u128, String, String)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "a whole line: {l:?}");
            (f[0].parse().unwrap(), f[2].to_string(), f[3].to_string())
        })
        .collect();
    let at = |role: &str, phase: &str| {
        marks
            .iter()
            .find(|(_, r, p)| r == role && p == phase)
            .unwrap_or_else(|| panic!("no {role} {phase} in:\n{text}"))
            .0
    };
    // In the order the processes pass them.
    let order = [
        at("cli", "start"),
        at("cli", "create:end"),
        at("cli", "monitor:spawn"),
        at("__monitor", "start"),
        at("__relay", "logdriver:open"),
        at("__monitor", "relay:ready"),
        at("__monitor", "container:started"),
        at("cli", "monitor:ready"),
        at("cli", "attach:exit"),
        at("cli", "end"),
    ];
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "out of order:\n{text}"
    );
}

#[test]
fn debug_logging_does_not_break_a_run() {
    // The relay's stderr carries its one "ready" line to the monitor: its diagnostics go
    // to relay.log, never there.
    let mut u = User::new("run_debug_log");
    let img = u.pull("busybox");
    u.env.push(("BURROW_LOG".into(), "debug".into()));
    let o = u.burrow(&[
        "run",
        "--name",
        "dbg",
        "--network",
        "none",
        &img,
        "echo",
        "hi",
    ]);
    assert_eq!(o.ok().stdout, "hi\n", "{o:#?}");
    let id = u.field("dbg", "{{.Id}}");
    let log = u.data_dir().join("containers").join(id).join("relay.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG"), "{text}");
}
