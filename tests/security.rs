//! What a hostile container can reach of burrow itself: nothing of the processes burrow
//! leaves in its namespaces (their descriptors, environment and memory), and no busy loop
//! of probes from a hostile image.

mod common;

use std::time::{Duration, Instant};

use common::User;

/// A variable of the user's shell that must never be readable inside a container.
const SECRET: (&str, &str) = ("BURROW_TEST_SECRET", "hunter2-in-the-shell");

fn user_with_a_secret(test: &str) -> User {
    let mut u = User::new(test);
    u.env.push((SECRET.0.into(), SECRET.1.into()));
    u
}

#[test]
fn init_pid_1_holds_no_descriptor_or_environment_of_burrow() {
    let u = user_with_a_secret("sec_init_fds");
    let img = u.pull("busybox");
    // As the container's root: pid 1 is burrow's init, forked from the monitor.
    let script = "ls -l /proc/1/fd/ 2>&1; echo ---; cat /proc/1/environ 2>&1; echo; \
                  echo ---; ls /proc/1/fd 2>/dev/null | wc -l";
    let o = u.burrow(&["run", "--rm", "--init", &img, "sh", "-c", script]);
    let out = &o.ok().stdout;
    assert!(!out.contains("state.db"), "pid 1 holds the state: {o:#?}");
    assert!(
        !out.contains(SECRET.1),
        "pid 1 shows the user's environment: {o:#?}"
    );
    assert!(
        !out.contains("HOME="),
        "pid 1 shows burrow's environment: {o:#?}"
    );
    // Nothing to list at all: the directory is closed to the container's root.
    assert_eq!(out.lines().last(), Some("0"), "{o:#?}");

    // What needs pid 1's namespaces still works: exec, top, joining its network.
    u.burrow(&[
        "run", "-d", "--init", "--name", "initd", &img, "sleep", "60",
    ])
    .ok();
    assert_eq!(
        u.burrow(&["exec", "initd", "echo", "in"]).ok().stdout,
        "in\n"
    );
    let o = u.burrow(&[
        "exec",
        "initd",
        "sh",
        "-c",
        "cat /proc/1/environ; echo rc=$?",
    ]);
    assert!(!o.stdout.contains(SECRET.1), "{o:#?}");
    let top = u.burrow(&["top", "initd"]);
    assert!(top.ok().stdout.contains("sleep 60"), "{top:#?}");
    let o = u.burrow(&[
        "run",
        "--rm",
        "--network",
        "container:initd",
        &img,
        "hostname",
    ]);
    assert_eq!(
        o.ok().stdout.trim(),
        u.field("initd", "{{.Config.Hostname}}")
    );
    u.burrow(&["rm", "-f", "initd"]).ok();
}

#[test]
fn an_exec_is_closed_to_the_container_before_its_command_runs() {
    let u = user_with_a_secret("sec_exec_window");
    let img = u.pull("busybox");
    // The container makes /etc/passwd a FIFO, so that the next exec's process stops in the
    // container, before its execve, opening it; the container looks at that process's
    // descriptors and environment, feeds it the file, and writes down what it saw.
    let script = r#"
        cp /etc/passwd /pw; rm /etc/passwd; mkfifo /etc/passwd; echo armed
        while :; do
            for p in /proc/[0-9]*; do
                case "$(cat $p/comm 2>/dev/null)" in burrow*) break 2;; esac
            done
            sleep 0.02
        done
        { ls -ln $p/fd/ 2>&1; tr '\0' '\n' < $p/environ 2>&1; } > /seen
        cat /pw > /etc/passwd; rm /etc/passwd; cp /pw /etc/passwd
        echo released; sleep 60
    "#;
    u.burrow(&["run", "-d", "--name", "window", &img, "sh", "-c", script])
        .ok();
    let logs_say = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = u.burrow(&["logs", "window"]);
            if o.stdout.contains(what) {
                return;
            }
            assert!(Instant::now() < deadline, "no {what:?} in the logs: {o:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    logs_say("armed");
    let mut exec = u.command(&["exec", "window", "true"]).spawn().unwrap();
    logs_say("released");
    let deadline = Instant::now() + Duration::from_secs(20);
    while exec.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = exec.kill();
            panic!("the exec never finished");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = u.burrow(&["exec", "window", "cat", "/seen"]);
    let seen = &seen.ok().stdout;
    // Before this change the process held burrow's descriptors (state.db, its WAL, the
    // target's namespaces) until its execve: their numbers were listed here, and their
    // targets readable once it had dropped to the container's capabilities.
    let held: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|fd| fd.parse::<u32>().is_ok_and(|n| n > 2))
        .collect();
    assert!(
        held.is_empty(),
        "the exec'd process held descriptors {held:?}: {seen}"
    );
    assert!(
        !seen.contains("state.db"),
        "the exec'd process held the state: {seen}"
    );
    assert!(
        !seen.contains(SECRET.1),
        "the exec'd process showed the user's environment: {seen}"
    );
    assert!(
        !seen.contains("HOME="),
        "the exec'd process showed burrow's environment: {seen}"
    );
    u.burrow(&["rm", "-f", "window"]).ok();
}

#[test]
fn healthcheck_durations_below_a_millisecond_are_refused() {
    let u = User::new("sec_health_floor");
    let img = u.pull("busybox");
    let o = u.burrow(&[
        "run",
        "-d",
        "--health-cmd",
        "true",
        "--health-interval",
        "1ns",
        &img,
        "sleep",
        "5",
    ]);
    o.code(125)
        .one_line_error()
        .stderr_has("Interval in Healthcheck cannot be less than 1ms");
    assert_eq!(
        u.burrow(&["ps", "-aq"]).ok().stdout,
        "",
        "a container was created"
    );
}
