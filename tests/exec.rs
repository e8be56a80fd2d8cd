//! `exec` into a running container, `top`, and `run --init`.

mod common;

use std::time::{Duration, Instant};

use common::User;

/// Single-quotes `s` for sh.
/// A detached container, removed with `rm -f` when dropped (a failing test included).
struct Running<'a>(&'a User, &'static str);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = self.0.burrow(&["rm", "-f", self.1]);
    }
}

/// `run -d --name NAME …IMAGE sh -c SCRIPT; exec sleep 300`, waiting until SCRIPT ran.
fn start<'a>(
    u: &'a User,
    name: &'static str,
    opts: &[&str],
    img: &str,
    script: &str,
) -> Running<'a> {
    let cmd = format!("{script}; touch /tmp/.ready; exec sleep 300");
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[img, "sh", "-c", &cmd]);
    u.burrow(&args).ok();
    let running = Running(u, name);
    let until = Instant::now() + Duration::from_secs(10);
    while u.burrow(&["exec", name, "test", "-e", "/tmp/.ready"]).code != 0 {
        assert!(Instant::now() < until, "{name} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}

#[test]
fn exec_runs_in_the_containers_namespaces_with_its_env() {
    let u = User::new("exec_ns");
    let img = u.pull("busybox");
    let _box = start(
        &u,
        "box",
        &["--hostname", "boxhost", "-e", "FOO=bar"],
        &img,
        "echo from-pid1 > /tmp/mark",
    );
    let o = u.burrow(&[
        "exec",
        "box",
        "sh",
        "-c",
        "hostname; cat /tmp/mark; echo $FOO; id -u; pwd; ps -o pid,comm | grep '^ *1 '",
    ]);
    let lines: Vec<&str> = o.ok().stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines[..5],
        ["boxhost", "from-pid1", "bar", "0", "/"],
        "{o:#?}"
    );
    // The container's own pid namespace: pid 1 is its command, not anything of the host.
    assert_eq!(lines[5].split_whitespace().nth(1), Some("sleep"), "{o:#?}");

    // -u resolves against the container's /etc/passwd; a non-root user has no capabilities.
    let o = u.burrow(&[
        "exec",
        "-u",
        "app",
        "box",
        "sh",
        "-c",
        "id -u; id -g; grep CapEff /proc/self/status",
    ]);
    assert_eq!(
        o.ok().stdout,
        "1000\n1000\nCapEff:\t0000000000000000\n",
        "{o:#?}"
    );
    u.burrow(&["exec", "-u", "nosuch", "box", "true"])
        .code(125)
        .stderr_has("unable to find user nosuch");

    // -e adds to the container's environment, -w sets (and creates) the working directory.
    let o = u.burrow(&[
        "exec",
        "-e",
        "A=b",
        "-w",
        "/new/dir",
        "box",
        "sh",
        "-c",
        "echo $A $FOO; pwd",
    ]);
    assert_eq!(o.ok().stdout, "b bar\n/new/dir\n", "{o:#?}");

    // Exit codes propagate as run's do.
    u.burrow(&["exec", "box", "sh", "-c", "exit 3"]).code(3);
    u.burrow(&["exec", "box", "nosuch"])
        .code(127)
        .stderr_has("executable file not found");
    u.burrow(&["exec", "box", "/etc/passwd"]).code(126);

    // stdin reaches the process with -i only.
    let o = u.burrow_stdin(&["exec", "-i", "box", "cat"], "piped\n");
    assert_eq!(o.ok().stdout, "piped\n", "{o:#?}");

    // top lists the container's processes as the host sees them.
    let o = u.burrow(&["top", "box"]);
    assert!(o.ok().stdout.contains("PID"), "{o:#?}");
    assert!(o.stdout.contains("sleep 300"), "{o:#?}");
}

#[test]
fn exec_detached_returns_at_once_and_leaves_the_process_running() {
    let u = User::new("exec_detach");
    let img = u.pull("busybox");
    let _c = start(&u, "bg", &[], &img, "true");
    let started = Instant::now();
    u.burrow(&[
        "exec",
        "-d",
        "bg",
        "sh",
        "-c",
        "sleep 2; echo done > /tmp/detached",
    ])
    .ok();
    assert!(started.elapsed() < Duration::from_secs(2), "exec -d waited");
    u.burrow(&["exec", "bg", "test", "-e", "/tmp/detached"])
        .code(1);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let o = u.burrow(&["exec", "bg", "cat", "/tmp/detached"]);
        if o.code == 0 {
            assert_eq!(o.stdout, "done\n");
            break;
        }
        assert!(
            Instant::now() < until,
            "the detached process never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn exec_dash_t_gives_a_terminal_of_the_containers_devpts() {
    let u = User::new("exec_tty");
    let img = u.pull("busybox");
    let _c = start(&u, "term", &[], &img, "true");
    let o = common::in_terminal(
        &u,
        "",
        &["exec", "-t", "term", "sh", "-c", "tty; echo x > /dev/tty"],
        "",
    );
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().map(str::trim).collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{o:#?}");
    assert_eq!(lines[1], "x", "{o:#?}");
    let o = common::in_terminal(
        &u,
        "",
        &["exec", "-it", "term", "sh"],
        "echo typed $((6*7))\nexit 5\n",
    );
    o.code(5);
    assert!(o.stdout.contains("typed 42"), "{o:#?}");
    // Without -t there is no terminal.
    u.burrow(&["exec", "term", "tty"]).code(1);
}

#[test]
fn exec_into_a_stopped_or_unknown_container_fails_on_one_line() {
    let u = User::new("exec_stopped");
    let img = u.pull("busybox");
    u.burrow(&["run", "--name", "over", &img, "true"]).ok();
    u.burrow(&["exec", "over", "true"])
        .code(125)
        .one_line_error();
    u.burrow(&["exec", "nosuch", "true"])
        .code(125)
        .one_line_error();
    u.burrow(&["top", "over"]).code(125).one_line_error();
}

#[test]
fn init_is_pid_1_and_reaps_zombies() {
    let u = User::new("init_reap");
    let img = u.pull("busybox");
    // An orphan that exits is reparented to pid 1 (not to sh, its grandparent), so only
    // pid 1 can reap it: a zombie in ps means it did not.
    let script = "(sleep 0.2 &); sleep 1; ps -o pid,stat,comm";
    let o = u.burrow(&["run", "--rm", "--init", &img, "sh", "-c", script]);
    let out = o.ok().stdout.clone();
    let pid1 = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"));
    let pid1 = pid1.unwrap_or_else(|| panic!("no pid 1: {o:#?}"));
    assert!(
        !pid1.ends_with(" sh") && !pid1.ends_with(" sleep"),
        "{o:#?}"
    );
    assert!(
        !out.lines()
            .any(|l| l.split_whitespace().nth(1) == Some("Z")),
        "{o:#?}"
    );
}

#[test]
fn init_forwards_signals_and_exit_codes() {
    let u = User::new("init_signals");
    let img = u.pull("busybox");
    // The kernel drops a signal to pid 1 that has no handler; init handles it and forwards
    // it to the command, which dies of it.
    let script = "kill -TERM 1; sleep 5; echo survived";
    let o = u.burrow(&["run", "--rm", "--init", &img, "sh", "-c", script]);
    o.code(128 + 15);
    assert!(!o.stdout.contains("survived"), "{o:#?}");
    let o = u.burrow(&[
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        "kill -TERM 1; echo survived",
    ]);
    assert_eq!(o.ok().stdout, "survived\n");
    u.burrow(&["run", "--rm", "--init", &img, "sh", "-c", "exit 3"])
        .code(3);
    u.burrow(&["run", "--rm", "--init", &img, "nosuch"])
        .code(127)
        .stderr_has("executable file not found");
    // stop's SIGTERM reaches a trap in the command through init.
    u.burrow(&[
        "run",
        "-d",
        "--init",
        "--name",
        "trapper",
        &img,
        "sh",
        "-c",
        "trap 'exit 7' TERM; while :; do sleep 0.1; done",
    ])
    .ok();
    let _trapper = Running(&u, "trapper");
    std::thread::sleep(Duration::from_millis(500));
    u.burrow(&["stop", "trapper"]).ok();
    let o = u.burrow(&["inspect", "--format", "{{.State.ExitCode}}", "trapper"]);
    assert_eq!(o.ok().stdout.trim(), "7", "{o:#?}");
    u.burrow(&["rm", "trapper"]).ok();
}
