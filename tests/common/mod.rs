//! The integration-test harness: runs the real burrow binary as an unprivileged user
//! (via runuser) with a private HOME, against the registries `tests/setup.sh` started.
//!
//! Run the suite through `bash tests/run.sh` (as root): it creates the users, starts the
//! registries and exports the variables read here. Run any other way, these tests fail
//! with a message saying so — they never pass by skipping.

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests with `bash tests/run.sh` as root")
    })
}

pub fn registry() -> String {
    var("BURROW_TEST_REGISTRY")
}

/// `REGISTRY/fixtures/NAME:latest`.
pub fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}:latest", registry())
}

const STATE: &str = "/var/tmp/burrow-test/it";

/// The burrow binary copied where an unprivileged user can run it (the checkout may sit
/// under /root).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = PathBuf::from(STATE).join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        for d in [Path::new("/var/tmp/burrow-test"), Path::new(STATE), &dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Each test binary's own (its pid in the name: `pgrep` patterns tell runs apart), a
        // hard link where the build is on the same file system, else a copy (about 500 MB in
        // debug). Those of test binaries that have ended go.
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("burrow-")
                .and_then(|rest| rest.split('.').next().and_then(|p| p.parse::<u32>().ok()));
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let dest = dir.join(format!("burrow-{}", std::process::id()));
        let _ = std::fs::remove_file(&dest);
        if std::fs::hard_link(env!("CARGO_BIN_EXE_burrow"), &dest).is_err() {
            let tmp = dest.with_extension("tmp");
            std::fs::copy(env!("CARGO_BIN_EXE_burrow"), &tmp).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::rename(&tmp, &dest).unwrap();
        }
        dest
    })
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn ok(&self) -> &Out {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        self
    }
    #[track_caller]
    pub fn code(&self, code: i32) -> &Out {
        assert_eq!(self.code, code, "expected exit {code}, got {self:#?}");
        self
    }
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Out {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:#?}"
        );
        self
    }
    /// A failure is reported on one line (progress lines of a pull may come before it).
    #[track_caller]
    pub fn one_line_error(&self) -> &Out {
        let lines: Vec<_> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("burrow: ") && !l.starts_with("burrow: warning:"))
            .collect();
        assert_eq!(lines.len(), 1, "error is not one line: {self:#?}");
        assert!(
            self.stderr.trim_end().ends_with(lines[0]),
            "the error is not the last line: {self:#?}"
        );
        self
    }
}

fn out(o: Output) -> Out {
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A user with a private HOME (so its own burrow state) for one test.
pub struct User {
    pub name: String,
    pub uid: u32,
    pub home: PathBuf,
    /// Extra environment (e.g. XDG_RUNTIME_DIR).
    pub env: Vec<(String, String)>,
    /// Global flags before the command (root's own `--root`/`--runroot`).
    pub global: Vec<String>,
    /// A network namespace to run burrow in (`ip netns exec`), if not the host's.
    pub netns: Option<String>,
}

fn uid_of(name: &str) -> u32 {
    let o = Command::new("id").arg("-u").arg(name).output().unwrap();
    assert!(o.status.success(), "no user {name}: run tests/setup.sh");
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

impl User {
    /// The user with subordinate id ranges.
    pub fn new(test: &str) -> User {
        User::named(&var("BURROW_TEST_USER"), test)
    }

    /// The user without subordinate id ranges.
    pub fn without_subids(test: &str) -> User {
        User::named(&var("BURROW_TEST_NOSUB_USER"), test)
    }

    pub fn named(name: &str, test: &str) -> User {
        assert!(
            nix_is_root(),
            "integration tests run as root (they switch to the test user): use tests/run.sh"
        );
        let uid = uid_of(name);
        let home = PathBuf::from(STATE)
            .join("homes")
            .join(format!("{test}-{name}"));
        remove_tree(&home);
        std::fs::create_dir_all(&home).unwrap();
        // Tests run in parallel as the same user: each gets its own runtime dir.
        let runtime = home.join("run");
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{name}:"))
            .arg(&home)
            .status()
            .unwrap();
        assert!(status.success());
        // Compiled plugins are cached per user: tests share the user's cache, so that only
        // the first test pays for compiling them.
        let cache = PathBuf::from(STATE).join(format!("cache-{name}"));
        std::fs::create_dir_all(&cache).unwrap();
        let status = Command::new("chown")
            .arg(format!("{name}:"))
            .arg(&cache)
            .status()
            .unwrap();
        assert!(status.success());
        User {
            name: name.to_string(),
            uid,
            env: vec![
                ("XDG_RUNTIME_DIR".into(), runtime.display().to_string()),
                ("XDG_CACHE_HOME".into(), cache.display().to_string()),
            ],
            home,
            global: vec![],
            netns: None,
        }
    }

    /// root, with its state in a private HOME (`--root HOME/data`, `--runroot HOME/run/burrow`).
    pub fn root(test: &str) -> User {
        let mut u = User::named("root", test);
        u.global = vec![
            "--root".into(),
            u.home.join("data").display().to_string(),
            "--runroot".into(),
            u.home.join("run/burrow").display().to_string(),
        ];
        u
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "runuser"]);
                c
            }
            None => Command::new("runuser"),
        };
        c.arg("-u").arg(&self.name).arg("--").arg("env").arg("-i");
        c.arg(format!("HOME={}", self.home.display()));
        c.arg("PATH=/usr/bin:/bin");
        for (k, v) in &self.env {
            c.arg(format!("{k}={v}"));
        }
        c.arg(binary()).args(&self.global).args(args);
        c.stdin(Stdio::null());
        c
    }

    pub fn burrow(&self, args: &[&str]) -> Out {
        out(self.command(args).output().unwrap())
    }

    pub fn burrow_stdin(&self, args: &[&str], input: &str) -> Out {
        use std::io::Write;
        let mut c = self.command(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        out(child.wait_with_output().unwrap())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home.join(".local/share/burrow")
    }

    /// Pulls a fixture over plain http and asserts success.
    pub fn pull(&self, name: &str) -> String {
        let image = fixture(name);
        self.burrow(&["pull", "-q", "--tls-verify=false", &image])
            .ok();
        image
    }

    /// `inspect --format TEMPLATE NAME`, trimmed, asserting success.
    pub fn field(&self, name: &str, template: &str) -> String {
        self.burrow(&["inspect", "--format", template, name])
            .ok()
            .stdout
            .trim()
            .to_string()
    }

    /// `run --rm IMAGE ARGS…` (pulling first) and returns the result.
    pub fn run(&self, image: &str, args: &[&str]) -> Out {
        let mut all = vec!["run", "--rm", image];
        all.extend_from_slice(args);
        self.burrow(&all)
    }
}

impl User {
    /// Ends the network holder of this test's runtime dir (its slirp4netns goes with it).
    pub fn stop_holder(&self) {
        let runtime = if self.env.iter().any(|(k, _)| k == "XDG_RUNTIME_DIR") {
            self.home.join("run/burrow")
        } else {
            PathBuf::from(format!("/tmp/burrow-{}", self.uid))
        };
        let path = runtime.join("network/holder.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let Some(pid) = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|h| h["pid"].as_i64())
        else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

impl Drop for User {
    fn drop(&mut self) {
        self.stop_holder();
        if !std::thread::panicking() {
            remove_tree(&self.home);
        }
    }
}

/// Now as `events --since` takes it: seconds.nanoseconds.
pub fn now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// Builds the wasm32-wasip2 components of the cargo project `manifest` in release mode into
/// `target_dir`; returns the directory holding the .wasm files. The outer `cargo test`'s
/// variables (meant for burrow's own build) are kept from the nested cargo.
pub fn build_wasm(manifest: &Path, target_dir: &Path) -> Result<PathBuf, String> {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
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

/// Removes a tree that may hold files owned by subordinate ids, as root.
pub fn remove_tree(path: &Path) {
    if path.exists() {
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+rwx")
            .arg(path)
            .status();
        let _ = std::fs::remove_dir_all(path);
    }
}

pub fn nix_is_root() -> bool {
    // SAFETY-free: read our uid from /proc instead of calling libc.
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .map(|l| l.split_whitespace().nth(1) == Some("0"))
        .unwrap_or(false)
}

/// Every mount point currently on the host, to check nothing is left behind.
pub fn host_mounts() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// Processes of a user, to check nothing is left running.
pub fn processes_of(user: &str) -> Vec<String> {
    let o = Command::new("ps")
        .args(["-u", user, "-o", "pid=,comm="])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Quotes for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `SETUP; burrow ARGS…` (SETUP may be empty) as the test user inside `script`, which
/// gives it a pseudo-terminal as stdin/stdout/stderr; `input` is typed on that terminal.
/// Carriage returns the terminal adds are dropped from stdout.
pub fn in_terminal(u: &User, setup: &str, args: &[&str], input: &str) -> Out {
    let burrow = u.command(args);
    let mut line: Vec<String> = vec![quote(&burrow.get_program().to_string_lossy())];
    line.extend(burrow.get_args().map(|a| quote(&a.to_string_lossy())));
    let inner = format!("{setup}{}", line.join(" "));
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) is installed");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).replace('\r', ""),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// An interactive session on a pseudo-terminal (`script`), typed into step by step: a
/// command that needs to see output before the next input (a shell, detach keys).
pub struct Terminal {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Terminal {
    /// Starts `burrow ARGS…` as the test user on a new terminal.
    pub fn start(u: &User, args: &[&str]) -> Terminal {
        use std::io::Read;
        let burrow = u.command(args);
        let mut line: Vec<String> = vec![quote(&burrow.get_program().to_string_lossy())];
        line.extend(burrow.get_args().map(|a| quote(&a.to_string_lossy())));
        let mut child = Command::new("script")
            .args(["-qefc", &line.join(" "), "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux) is installed");
        let mut out = child.stdout.take().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = output.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            stdin: child.stdin.take(),
            child,
            output,
            reader: Some(reader),
        }
    }

    /// Everything the terminal showed so far, carriage returns dropped.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).replace('\r', "")
    }

    /// Waits until the terminal shows `needle` (counted from the start); panics after 20 s.
    #[track_caller]
    pub fn expect(&self, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.screen().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "the terminal never showed {needle:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &str) {
        let stdin = self.stdin.as_mut().expect("the terminal is open");
        stdin.write_all(keys.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the command to end (20 s at most) and returns its exit code.
    #[track_caller]
    pub fn wait(mut self) -> i32 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                drop(self.stdin.take());
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return status.code().unwrap_or(-1);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the command did not end:\n{}", self.screen());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
