//! Detached containers under their monitor: run -d, stop, kill, wait, restart policies,
//! rm -f, a SIGKILLed monitor, a reused pid, and many cron-like jobs at once.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Out, User};

/// Processes of `user` whose command line contains `needle`.
fn pgrep(user: &str, needle: &str) -> Vec<u32> {
    let o = Command::new("pgrep")
        .args(["-u", user, "-f", needle])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Polls `inspect` until `template` renders `want` or 10 s pass.
#[track_caller]
fn eventually(u: &User, name: &str, template: &str, want: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got = u.field(name, template);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < until,
            "{name}: {template} is {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn detach(u: &User, args: &[&str]) -> Out {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    u.burrow(&all)
}

#[test]
fn run_detached_then_stop_with_the_stop_signal() {
    let u = User::new("detach_stop");
    let img = u.pull("busybox");
    let started = Instant::now();
    let o = detach(
        &u,
        &[
            "--name",
            "svc",
            &img,
            "sh",
            "-c",
            "trap 'exit 3' TERM; while :; do sleep 0.1; done",
        ],
    );
    let id = o.ok().stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{o:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "run -d returned at once"
    );
    let o = u.burrow(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(o.ok().stdout.starts_with("svc Up "), "{o:#?}");
    let pid: i32 = u.field("svc", "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 0);
    assert_eq!(u.field("svc", "{{.State.Running}}"), "true");
    assert_eq!(u.burrow(&["stop", "svc"]).ok().stdout, "svc\n");
    assert_eq!(
        u.field("svc", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 3"
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(u.burrow(&["wait", "svc"]).ok().stdout, "3\n");
    // Stopped containers show only with -a.
    assert_eq!(u.burrow(&["ps", "-q"]).ok().stdout, "");
    // start brings it back, detached.
    u.burrow(&["start", "svc"]).ok();
    assert_eq!(u.field("svc", "{{.State.Status}}"), "running");
    u.burrow(&["rm", "svc"]).code(1).stderr_has("running");
    u.burrow(&["rm", "-f", "svc"]).ok();
    assert!(pgrep(&u.name, "trap 'exit 3'").is_empty());
}

#[test]
fn stop_kills_after_the_timeout_and_kill_sends_signals() {
    let u = User::new("stop_timeout");
    let img = u.pull("busybox");
    // sleep as pid 1 ignores SIGTERM: stop waits -t then SIGKILLs.
    detach(&u, &["--name", "stubborn", &img, "sleep", "301.1"]).ok();
    let t = Instant::now();
    u.burrow(&["stop", "-t", "1", "stubborn"]).ok();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "waited for the timeout: {took:?}"
    );
    assert_eq!(u.field("stubborn", "{{.State.ExitCode}}"), "137");
    assert!(pgrep(&u.name, "sleep 301.1").is_empty());
    // kill -s delivers a signal the container handles.
    detach(
        &u,
        &[
            "--name",
            "handler",
            &img,
            "sh",
            "-c",
            "trap 'exit 10' USR1; while :; do sleep 0.1; done",
        ],
    )
    .ok();
    u.burrow(&["kill", "-s", "USR1", "handler"]).ok();
    assert_eq!(u.burrow(&["wait", "handler"]).ok().stdout, "10\n");
    u.burrow(&["kill", "handler"])
        .code(1)
        .stderr_has("not running");
    u.burrow(&["kill", "-s", "NOPE", "handler"])
        .code(1)
        .stderr_has("invalid signal");
    // --stop-signal is what stop sends first.
    detach(
        &u,
        &[
            "--name",
            "custom",
            "--stop-signal",
            "USR2",
            &img,
            "sh",
            "-c",
            "trap 'exit 12' USR2; while :; do sleep 0.1; done",
        ],
    )
    .ok();
    u.burrow(&["stop", "custom"]).ok();
    assert_eq!(u.field("custom", "{{.State.ExitCode}}"), "12");
}

#[test]
fn restart_policies() {
    let u = User::new("restart_policy");
    let img = u.pull("busybox");
    detach(
        &u,
        &[
            "--name",
            "flaky",
            "--restart",
            "on-failure:2",
            &img,
            "sh",
            "-c",
            "exit 4",
        ],
    )
    .ok();
    eventually(
        &u,
        "flaky",
        "{{.State.Status}} {{.RestartCount}}",
        "exited 2",
    );
    assert_eq!(
        u.field("flaky",
            "{{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "4 on-failure 2"
    );
    // on-failure leaves a clean exit alone.
    detach(
        &u,
        &["--name", "fine", "--restart", "on-failure", &img, "true"],
    )
    .ok();
    eventually(
        &u,
        "fine",
        "{{.State.Status}} {{.RestartCount}}",
        "exited 0",
    );
    // always comes back after an exit, but never after stop.
    detach(
        &u,
        &[
            "--name",
            "again",
            "--restart",
            "always",
            &img,
            "sh",
            "-c",
            "sleep 0.3",
        ],
    )
    .ok();
    let until = Instant::now() + Duration::from_secs(10);
    while u.field("again", "{{.RestartCount}}") == "0" {
        assert!(Instant::now() < until, "always did not restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    u.burrow(&["stop", "-t", "1", "again"]).ok();
    let count = u.field("again", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        u.field("again", "{{.State.Status}} {{.RestartCount}}"),
        format!("exited {count}")
    );
    u.burrow(&["run", "--rm", "--restart", "always", &img, "true"])
        .code(125)
        .stderr_has("--restart and --rm");
    u.burrow(&["run", "-d", "--restart", "sometimes", &img, "true"])
        .code(125)
        .one_line_error();
}

#[test]
fn a_sigkilled_monitor_is_noticed_and_restore_brings_always_back() {
    let u = User::new("monitor_killed");
    let img = u.pull("busybox");
    let id = detach(
        &u,
        &[
            "--name",
            "orphan",
            "--restart",
            "always",
            &img,
            "sleep",
            "302.2",
        ],
    )
    .ok()
    .stdout
    .trim()
    .to_string();
    detach(
        &u,
        &[
            "--name",
            "quiet",
            "--restart",
            "unless-stopped",
            &img,
            "sleep",
            "302.3",
        ],
    )
    .ok();
    u.burrow(&["stop", "-t", "0", "quiet"]).ok();
    // The monitor's forked children share its command line: the oldest is the monitor.
    let monitors = pgrep(&u.name, &format!("__monitor {id}"));
    assert!(!monitors.is_empty(), "no monitor");
    let monitor = monitors.iter().min().unwrap();
    Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status()
        .unwrap();
    // The container dies with its monitor; the next command records the truth.
    let until = Instant::now() + Duration::from_secs(5);
    while !pgrep(&u.name, "sleep 302.2").is_empty() {
        if Instant::now() >= until {
            let ps = Command::new("ps")
                .args(["-u", &u.name, "-o", "pid,ppid,stat,args"])
                .output()
                .unwrap();
            panic!(
                "the container outlived its monitor {monitor} (of {monitors:?}):\n{}",
                String::from_utf8_lossy(&ps.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = u.burrow(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(o.ok().stdout.contains("orphan Exited (137)"), "{o:#?}");
    assert!(u.field("orphan", "{{.State.Error}}").contains("monitor"));
    // After a "reboot": restore starts `always` and leaves the stopped unless-stopped one.
    let o = u.burrow(&["system", "restore"]);
    assert_eq!(o.ok().stdout, "orphan\n");
    assert_eq!(u.field("orphan", "{{.State.Status}}"), "running");
    assert_eq!(u.field("quiet", "{{.State.Status}}"), "exited");
    u.burrow(&["rm", "-f", "orphan", "quiet"]).ok();
    assert!(pgrep(&u.name, "sleep 302").is_empty());
    let run_dir = u.home.join("run/burrow/containers");
    let left = std::fs::read_dir(&run_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "runtime files left in {}", run_dir.display());
}

#[test]
fn a_reused_pid_is_never_signalled() {
    let u = User::new("reused_pid");
    let img = u.pull("busybox");
    detach(&u, &["--name", "gone", &img, "sleep", "303.3"]).ok();
    u.burrow(&["stop", "-t", "0", "gone"]).ok();
    // A process of the same user now holds a pid; pretend the state still says the
    // container runs there (its monitor died), with the container's old start time.
    let mut bystander = Command::new("runuser")
        .args(["-u", &u.name, "--", "sleep", "303.4"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = pgrep(&u.name, "sleep 303.4")[0] as i64;
    let db = rusqlite::Connection::open(u.data_dir().join("state.db")).unwrap();
    db.execute(
        "UPDATE containers SET status = 'running', pid = ?1, pid_start = 1 WHERE name = 'gone'",
        [pid],
    )
    .unwrap();
    drop(db);
    let o = u.burrow(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(o.ok().stdout.contains("gone Exited (137)"), "{o:#?}");
    u.burrow(&["rm", "-f", "gone"]).ok();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the bystander with the reused pid was killed"
    );
    Command::new("kill").arg(pid.to_string()).status().unwrap();
    let _ = bystander.wait();
}

#[test]
fn rename_and_prune() {
    let u = User::new("rename_prune");
    let img = u.pull("busybox");
    u.burrow(&["create", "--name", "old", &img, "true"]).ok();
    u.burrow(&["create", "--name", "other", &img, "true"]).ok();
    u.burrow(&["rename", "old", "new"]).ok();
    u.burrow(&["rename", "new", "other"])
        .code(125)
        .stderr_has("already in use");
    assert_eq!(u.field("new", "{{.Name}}"), "/new");
    detach(&u, &["--name", "alive", &img, "sleep", "304.4"]).ok();
    let o = u.burrow(&["container", "prune", "-f"]);
    assert!(o.ok().stdout.starts_with("Deleted Containers:\n"), "{o:#?}");
    assert_eq!(o.stdout.lines().filter(|l| l.len() == 64).count(), 2);
    let o = u.burrow(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(o.ok().stdout, "alive\n");
    u.burrow(&["rm", "-f", "alive"]).ok();
}

#[test]
fn twenty_cron_jobs_at_once() {
    let mut u = User::new("cron20");
    u.env.clear(); // no XDG_RUNTIME_DIR: /tmp/burrow-UID
    let _ = std::fs::remove_dir_all(format!("/tmp/burrow-{}", u.uid));
    let img = u.pull("busybox");
    let jobs: Vec<_> = (0..20)
        .map(|i| {
            let name = format!("job{i}");
            let script = [
                format!(
                    "{} run -d --name {name} {img} sleep 305.{i}",
                    common::binary().display()
                ),
                format!("{} ps -a -q", common::binary().display()),
                format!("{} stop -t 0 {name}", common::binary().display()),
                format!("{} rm -f {name}", common::binary().display()),
            ]
            .join(" && ");
            let mut c = Command::new("runuser");
            c.args(["-u", &u.name, "--", "env", "-i"])
                .arg(format!("HOME={}", u.home.display()))
                .arg("PATH=/usr/bin:/bin")
                .args(["sh", "-c", &script])
                .stdin(std::process::Stdio::null());
            std::thread::spawn(move || c.output().unwrap())
        })
        .collect();
    for j in jobs {
        let o = j.join().unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    assert_eq!(u.burrow(&["ps", "-a", "-q"]).ok().stdout, "");
    assert!(pgrep(&u.name, "sleep 305.").is_empty());
    let state = u.burrow(&["images", "-q"]);
    assert_eq!(state.ok().stdout.lines().count(), 1);
}

#[test]
fn healthchecks_report_starting_healthy_and_unhealthy() {
    let u = User::new("health");
    let img = u.pull("busybox");
    detach(
        &u,
        &[
            "--name",
            "probed",
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "100ms",
            "--health-retries",
            "2",
            &img,
            "sleep",
            "306.6",
        ],
    )
    .ok();
    let o = u.burrow(&["ps", "--format", "{{.Status}}"]);
    assert!(
        o.ok().stdout.contains("(health: starting)") || o.stdout.contains("(unhealthy)"),
        "{o:#?}"
    );
    eventually(&u, "probed", "{{.State.Health.Status}}", "unhealthy");
    u.burrow(&["exec", "probed", "touch", "/tmp/ok"]).ok();
    eventually(
        &u,
        "probed",
        "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
        "healthy 0",
    );
    let o = u.burrow(&[
        "ps",
        "--filter",
        "health=healthy",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(
        o.ok().stdout.starts_with("probed Up ") && o.stdout.contains("(healthy)"),
        "{o:#?}"
    );
    let log = u.field("probed", "{{len .State.Health.Log}}");
    assert!(
        log.parse::<usize>().unwrap() <= 5,
        "Docker keeps five probes: {log}"
    );
    assert_eq!(
        u.field("probed", "{{index .Config.Healthcheck.Test 2}}"),
        "test -e /tmp/ok"
    );
    u.burrow(&["rm", "-f", "probed"]).ok();
    assert!(
        pgrep(&u.name, "__health").is_empty(),
        "the prober outlived its container"
    );
    // --no-healthcheck: no Health at all.
    detach(
        &u,
        &[
            "--name",
            "plain",
            "--no-healthcheck",
            &img,
            "sleep",
            "306.7",
        ],
    )
    .ok();
    assert_eq!(u.field("plain", "{{json .State.Health}}"), "null");
    u.burrow(&["rm", "-f", "plain"]).ok();
}

#[test]
fn labels_sizes_and_the_systemd_unit() {
    let u = User::new("labels_size");
    let img = u.pull("busybox");
    detach(
        &u,
        &[
            "--name",
            "tagged",
            "-l",
            "tier=web",
            "--label",
            "solo",
            &img,
            "sh",
            "-c",
            "head -c 300000 /dev/zero > /big; sleep 307.7",
        ],
    )
    .ok();
    u.burrow(&["create", "--name", "untagged", &img, "true"])
        .ok();
    let o = u.burrow(&[
        "ps",
        "-a",
        "--filter",
        "label=tier=web",
        "--format",
        "{{.Names}} {{.Labels}}",
    ]);
    assert_eq!(o.ok().stdout, "tagged solo=,tier=web\n");
    let o = u.burrow(&["ps", "-a", "--filter", "label=solo", "-q"]);
    assert_eq!(o.ok().stdout.lines().count(), 1);
    assert_eq!(
        u.field("tagged", "{{index .Config.Labels \"tier\"}}"),
        "web"
    );
    // -s: the writable layer holds the 300 kB file.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let o = u.burrow(&[
            "ps",
            "-s",
            "--filter",
            "label=tier",
            "--format",
            "{{.Size}}",
        ]);
        let size = o.ok().stdout.trim().to_string();
        if size.starts_with("300kB (virtual ") {
            break;
        }
        assert!(Instant::now() < until, "size never reached 300kB: {size}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = u.burrow(&["ps", "-s"]);
    assert!(
        o.ok().stdout.lines().next().unwrap().ends_with("SIZE"),
        "{o:#?}"
    );
    u.burrow(&["rm", "-f", "tagged", "untagged"]).ok();
    let unit = u.burrow(&["system", "unit"]);
    assert!(unit.ok().stdout.contains("system restore"), "{unit:#?}");
    assert!(unit.stdout.contains("[Install]\nWantedBy=default.target"));
}

#[test]
fn attach_streams_output_sends_input_and_detaches() {
    use std::io::Write;
    let u = User::new("attach");
    let img = u.pull("busybox");
    // Detach keys work with a terminal (Docker's rule): -t, its echo off.
    detach(
        &u,
        &[
            "-i",
            "-t",
            "--name",
            "echoer",
            &img,
            "sh",
            "-c",
            "stty -echo; while read l; do echo got $l; done",
        ],
    )
    .ok();
    let mut attach = u.command(&["attach", "echoer"]);
    let mut child = attach
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stdin.write_all(b"one\n").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // ctrl-p ctrl-q: Docker's detach keys.
    stdin.write_all(&[0x10, 0x11]).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got one\r\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("read escape sequence"));
    assert_eq!(u.field("echoer", "{{.State.Status}}"), "running");
    // The output also went to the container's log.
    assert_eq!(u.burrow(&["logs", "echoer"]).ok().stdout, "got one\r\n");
    u.burrow(&["rm", "-f", "echoer"]).ok();
    // Without a terminal stdin is data, detach keys included (a piped binary may hold them).
    let o = u.burrow_stdin(
        &["run", "-i", "--rm", "--network", "none", &img, "wc", "-c"],
        "\x10\x11\n",
    );
    assert_eq!(o.ok().stdout.trim(), "3");
    // Attached until the container ends: its output and its exit status.
    detach(
        &u,
        &[
            "--name",
            "ender",
            &img,
            "sh",
            "-c",
            "sleep 0.5; echo bye; exit 5",
        ],
    )
    .ok();
    let o = u.burrow(&["attach", "ender"]);
    o.code(5);
    assert_eq!(o.stdout, "bye\n");
    u.burrow(&["attach", "ender"])
        .code(125)
        .stderr_has("not running");
    u.burrow(&["attach", "--detach-keys", "alt-x", "ender"])
        .code(125);
}

#[test]
fn a_detached_rm_container_removes_itself() {
    let u = User::new("detached_rm");
    let img = u.pull("busybox");
    let t = Instant::now();
    detach(
        &u,
        &["--rm", "--name", "brief", &img, "sh", "-c", "sleep 0.3"],
    )
    .ok();
    let until = Instant::now() + Duration::from_secs(10);
    while !u.burrow(&["ps", "-a", "-q"]).ok().stdout.is_empty() {
        assert!(Instant::now() < until, "--rm container still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "removal took {:?}",
        t.elapsed()
    );
    // Its files go too: the monitor deletes them once its client heard the exit.
    let left = || {
        std::fs::read_dir(u.data_dir().join("containers"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    };
    while !left().is_empty() {
        assert!(Instant::now() < until, "left behind: {:?}", left());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_detached_terminal_can_be_attached() {
    use std::io::Write;
    let u = User::new("attach_tty");
    let img = u.pull("busybox");
    detach(&u, &["-i", "-t", "--name", "term", &img, "sh"]).ok();
    let burrow = u.command(&["attach", "term"]);
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = vec![quote(&burrow.get_program().to_string_lossy())];
    line.extend(burrow.get_args().map(|a| quote(&a.to_string_lossy())));
    let mut child = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    stdin.write_all(b"tty; stty size\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    stdin.write_all(&[0x10, 0x11]).unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert!(out.contains("/dev/pts/0\n"), "{out}");
    assert!(
        out.contains("24 80\n"),
        "a detached terminal is 80x24: {out}"
    );
    assert_eq!(u.field("term", "{{.State.Status}}"), "running");
    u.burrow(&["rm", "-f", "term"]).ok();
}

#[test]
fn the_images_healthcheck_stop_signal_and_labels_apply() {
    let u = User::new("image_health");
    let img = u.pull("health");
    detach(
        &u,
        &[
            "--name",
            "fromimage",
            &img,
            "sh",
            "-c",
            "trap 'exit 9' USR1; touch /tmp/healthy; while :; do sleep 0.1; done",
        ],
    )
    .ok();
    eventually(&u, "fromimage", "{{.State.Health.Status}}", "healthy");
    assert_eq!(
        u.field(
            "fromimage",
            "{{.Config.StopSignal}} {{index .Config.Labels \"fixture\"}}"
        ),
        "SIGUSR1 health"
    );
    u.burrow(&["stop", "fromimage"]).ok();
    assert_eq!(u.field("fromimage", "{{.State.ExitCode}}"), "9");
    u.burrow(&["rm", "fromimage"]).ok();
}

/// The one process of `user` whose command line contains `needle`, waiting for it.
fn the_process(user: &str, needle: &str) -> u32 {
    // This test run's binary: processes left by an earlier run do not count.
    let needle = &format!("{} {needle}", common::binary().display());
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let [pid] = pgrep(user, needle)[..] {
            return pid;
        }
        assert!(Instant::now() < until, "no single process {needle:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn foreground_run_goes_through_the_monitor() {
    let u = User::new("fg_monitor");
    let img = u.pull("busybox");
    // stdout and stderr stay apart, and the container's exit code comes back, --rm or not.
    let o = u.run(&img, &["sh", "-c", "echo out; echo err >&2; exit 4"]);
    assert_eq!((o.code, o.stdout.as_str()), (4, "out\n"), "{o:#?}");
    assert_eq!(o.stderr, "err\n", "{o:#?}");
    let o = u.burrow(&["run", "--name", "kept", &img, "sh", "-c", "exit 5"]);
    assert_eq!(o.code, 5, "{o:#?}");
    assert_eq!(u.field("kept", "{{.State.ExitCode}}"), "5");

    // The container belongs to its monitor, not to the command that started it: killing
    // that command leaves the container running, as with Docker.
    let mut client = u
        .command(&["run", "--name", "fg", &img, "sleep", "100"])
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while u
        .burrow(&["ps", "-q", "--filter", "name=fg"])
        .stdout
        .is_empty()
    {
        assert!(Instant::now() < until, "fg never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = the_process(&u.name, "run --name fg");
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    client.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(u.field("fg", "{{.State.Status}}"), "running");
    u.burrow(&["rm", "-f", "fg"]).ok();

    // --restart applies to a foreground run: the command returns the first exit code and the
    // monitor goes on restarting the container.
    let o = u.burrow(&[
        "run",
        "--name",
        "again",
        "--restart",
        "on-failure:2",
        &img,
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(o.code, 3, "{o:#?}");
    eventually(
        &u,
        "again",
        "{{.RestartCount}} {{.State.Status}}",
        "2 exited",
    );
}

#[test]
fn foreground_run_forwards_signals_to_the_container() {
    use std::io::{BufRead, BufReader, Read};
    let u = User::new("fg_sigproxy");
    let img = u.pull("busybox");
    let script = "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done";
    let mut client = u
        .command(&["run", "--rm", "--name", "sigs", &img, "sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let pid = the_process(&u.name, "run --rm --name sigs");
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = client.wait().unwrap();
    assert_eq!(rest, "got TERM\n");
    assert_eq!(status.code(), Some(7));
    // Without the proxy the signal stays with burrow's command; the container runs on.
    let mut client = u
        .command(&[
            "run",
            "--sig-proxy=false",
            "--name",
            "nosigs",
            &img,
            "sh",
            "-c",
            script,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let pid = the_process(&u.name, "run --sig-proxy=false --name nosigs");
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    client.wait().unwrap();
    assert_eq!(u.field("nosigs", "{{.State.Status}}"), "running");
    u.burrow(&["rm", "-f", "nosigs"]).ok();
}
