//! `-t`: the container gets a terminal from its own devpts, so it sees a tty, its size, and
//! a controlling terminal. burrow itself is given a real terminal by `script`.

mod common;

use common::User;

/// Single-quotes `s` for sh.
#[test]
fn dash_t_gives_the_container_a_terminal_of_its_own() {
    let u = User::new("tty_basic");
    let img = u.pull("busybox");
    let o = common::in_terminal(&u, "", &["run", "--rm", "-t", &img, "tty"], "");
    o.ok();
    // Docker prints /dev/pts/0: the first pty of the container's own devpts.
    assert_eq!(o.stdout.trim(), "/dev/pts/0", "{o:#?}");

    // /dev/console is the same terminal, and it is the controlling terminal (/dev/tty opens).
    let o = common::in_terminal(
        &u,
        "",
        &[
            "run",
            "--rm",
            "-t",
            &img,
            "sh",
            "-c",
            "ls /dev/pts; stat -c %t:%T /dev/console /dev/pts/0; echo ctty > /dev/tty",
        ],
        "",
    );
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().map(str::trim).collect();
    assert!(lines[0].split_whitespace().any(|w| w == "0"), "{o:#?}");
    assert_eq!(lines[1], lines[2], "console is the pty: {o:#?}");
    assert_eq!(lines[3], "ctty", "{o:#?}");
}

#[test]
fn dash_t_passes_the_window_size() {
    let u = User::new("tty_size");
    let img = u.pull("busybox");
    let o = common::in_terminal(
        &u,
        "stty rows 31 cols 101; ",
        &["run", "--rm", "-t", &img, "sh", "-c", "stty size"],
        "",
    );
    o.ok();
    assert_eq!(o.stdout.trim(), "31 101", "{o:#?}");
}

#[test]
fn window_size_changes_reach_the_container() {
    let u = User::new("tty_resize");
    let img = u.pull("busybox");
    // The terminal is resized (SIGWINCH to burrow) while the container waits for it.
    let wait = "stty size; i=0; while [ \"$(stty size)\" = '31 101' ] && [ $i -lt 100 ]; \
                do sleep 0.1; i=$((i+1)); done; stty size";
    let o = common::in_terminal(
        &u,
        "stty rows 31 cols 101; (sleep 3; stty rows 42 cols 120 </dev/tty) & ",
        &["run", "--rm", "-t", &img, "sh", "-c", wait],
        "",
    );
    o.ok();
    assert_eq!(o.stdout.trim(), "31 101\n42 120", "{o:#?}");
}

#[test]
fn dash_it_runs_an_interactive_shell() {
    let u = User::new("tty_interactive");
    let img = u.pull("busybox");
    // The shell echoes what is typed (a terminal) and prints the result; `he''llo` tells the
    // typed line from the output.
    let o = common::in_terminal(
        &u,
        "",
        &["run", "--rm", "-i", "-t", &img, "sh"],
        "echo he''llo; tty\nexit 7\n",
    );
    o.code(7);
    assert!(o.stdout.contains("echo he''llo"), "input echoed: {o:#?}");
    assert!(
        o.stdout.lines().any(|l| l.trim() == "hello"),
        "command ran: {o:#?}"
    );
    assert!(
        o.stdout.lines().any(|l| l.trim() == "/dev/pts/0"),
        "stdin is the pty: {o:#?}"
    );
}

#[test]
fn the_terminal_belongs_to_the_container_user() {
    let u = User::new("tty_user");
    let img = u.pull("busybox");
    let o = common::in_terminal(
        &u,
        "",
        &[
            "run",
            "--rm",
            "-t",
            "-u",
            "1000:1000",
            &img,
            "sh",
            "-c",
            "stat -c %u:%g $(tty)",
        ],
        "",
    );
    o.ok();
    // Like runc: the owner becomes the user, the group stays devpts's tty group (5).
    assert_eq!(o.stdout.trim(), "1000:5", "{o:#?}");
}

#[test]
fn without_dash_t_there_is_no_terminal() {
    let u = User::new("tty_none");
    let img = u.pull("busybox");
    let o = u.run(&img, &["tty"]);
    o.code(1);
    assert_eq!(o.stdout, "not a tty\n");
    // Not even when burrow itself has one.
    let o = common::in_terminal(&u, "", &["run", "--rm", &img, "tty"], "");
    o.code(1);
    assert_eq!(o.stdout.trim(), "not a tty", "{o:#?}");
}

/// ctrl-p ctrl-q.
const DETACH: &str = "\x10\x11";

#[test]
fn a_detached_run_it_can_be_attached_again_and_again() {
    let u = User::new("tty_reattach");
    let img = u.pull("busybox");
    let mut t = common::Terminal::start(&u, &["run", "-it", "--name", "tty3", &img, "sh"]);
    t.expect("# ");
    t.send("echo fi''rst\n");
    t.expect("first");
    t.send(DETACH);
    t.expect("read escape sequence");
    assert_eq!(t.wait(), 0, "a detach ends the client with 0");
    let o = u.burrow(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(o.ok().stdout.contains("tty3 Up"), "{o:#?}");

    // The shell still reads what the next client types, as often as it attaches.
    for word in ["sec''ond", "thi''rd"] {
        let mut t = common::Terminal::start(&u, &["attach", "tty3"]);
        t.send(&format!("echo {word}\n"));
        t.expect(&word.replace("''", ""));
        t.expect("# ");
        t.send(DETACH);
        t.expect("read escape sequence");
        assert_eq!(t.wait(), 0);
    }
    let mut t = common::Terminal::start(&u, &["attach", "tty3"]);
    t.send("exit 4\n");
    assert_eq!(t.wait(), 4, "the client returns the container's exit code");
    let o = u.burrow(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(o.ok().stdout.contains("tty3 Exited (4)"), "{o:#?}");

    // The same with keys of one's own.
    let mut t = common::Terminal::start(
        &u,
        &[
            "run",
            "-it",
            "--detach-keys",
            "ctrl-x,y",
            "--name",
            "tty4",
            &img,
            "sh",
        ],
    );
    t.expect("# ");
    t.send("\x18y");
    t.expect("read escape sequence");
    assert_eq!(t.wait(), 0);
    let mut t = common::Terminal::start(&u, &["attach", "--detach-keys", "ctrl-x,y", "tty4"]);
    t.send("echo fou''rth\n");
    t.expect("fourth");
    t.send("exit 5\n");
    assert_eq!(t.wait(), 5);
}

#[test]
fn a_privileged_host_port_says_why_and_what_fixes_it() {
    let u = User::new("tty_lowport");
    let img = u.pull("busybox");
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        start > 80,
        "needs net.ipv4.ip_unprivileged_port_start above 80 (it is {start})"
    );
    let o = u.burrow(&["run", "-d", "-p", "80:8080", &img, "sleep", "30"]);
    o.code(125)
        .one_line_error()
        .stderr_has("ports below")
        .stderr_has("sysctl -w net.ipv4.ip_unprivileged_port_start=80");
    assert_eq!(
        u.burrow(&["ps", "-q"]).ok().stdout,
        "",
        "nothing left running"
    );
}
