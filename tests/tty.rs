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
