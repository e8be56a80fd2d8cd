//! pull, images, tag, rmi, image inspect, image prune, login/logout.

mod common;

use common::{User, fixture, registry, var};

#[test]
fn pull_prints_progress_lines_and_the_name() {
    let u = User::new("pull_lines");
    let img = fixture("busybox");
    let o = u.burrow(&["pull", "--tls-verify=false", &img]);
    o.ok();
    assert_eq!(o.stdout, format!("{img}\n"));
    assert!(o.stderr.contains("Download complete"), "{o:#?}");
    assert!(
        !o.stderr.contains('\x1b'),
        "no terminal codes without a TTY: {o:#?}"
    );
    // Pulling again reuses what is there.
    let o = u.burrow(&["pull", "--tls-verify=false", &img]);
    assert!(o.ok().stderr.contains("Already exists"), "{o:#?}");
    let q = u.burrow(&["pull", "-q", "--tls-verify=false", &img]);
    assert!(
        q.ok().stdout.starts_with("sha256:") && q.stderr.is_empty(),
        "{q:#?}"
    );
}

#[test]
fn plain_http_needs_tls_verify_false() {
    let u = User::new("tls");
    u.burrow(&["pull", &fixture("busybox")])
        .code(125)
        .stderr_has("--tls-verify=false")
        .one_line_error();
    // The config file's insecure list works too.
    let cfg = u.home.join(".config/burrow");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("burrow.toml"),
        format!("insecure_registries = [\"{}\"]\n", registry()),
    )
    .unwrap();
    let _ = std::process::Command::new("chown")
        .args(["-R", &format!("{}:", u.name)])
        .arg(u.home.join(".config"))
        .status();
    u.burrow(&["pull", "-q", &fixture("busybox")]).ok();
}

#[test]
fn images_lists_tags_digests_and_formats() {
    let u = User::new("images_list");
    u.pull("busybox");
    let o = u.burrow(&["images"]);
    let lines: Vec<&str> = o.ok().stdout.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY"), "{o:#?}");
    assert!(lines[0].contains("TAG") && lines[0].contains("IMAGE ID") && lines[0].contains("SIZE"));
    let repo = format!("{}/fixtures/busybox", registry());
    assert!(lines[1].starts_with(&repo), "{o:#?}");
    assert!(lines[1].contains("latest"));
    let q = u.burrow(&["images", "-q"]);
    assert_eq!(q.ok().stdout.trim().len(), 12);
    let full = u.burrow(&["images", "-q", "--no-trunc"]);
    assert!(full.ok().stdout.starts_with("sha256:"));
    let d = u.burrow(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Digest}}",
    ]);
    let line = d.ok().stdout.clone();
    assert!(
        line.starts_with(&format!("{repo}:latest sha256:")),
        "{d:#?}"
    );
    // The digest shown is the manifest digest, usable to pull by digest.
    let digest = line.split_whitespace().nth(1).unwrap().to_string();
    let by_digest = format!("{repo}@{digest}");
    u.burrow(&["pull", "-q", "--tls-verify=false", &by_digest])
        .ok();
    u.run(&by_digest, &["true"]).ok();
    let t = u.burrow(&["images", "--format", "table {{.Repository}}\t{{.Tag}}"]);
    assert!(t.ok().stdout.starts_with("REPOSITORY"), "{t:#?}");
    u.burrow(&["images", "--format", "{{.Nope"])
        .code(125)
        .one_line_error();
}

#[test]
fn tag_rmi_and_prune() {
    let u = User::new("tag_rmi");
    let img = u.pull("busybox");
    u.burrow(&["tag", &img, "mine/copy:v1"]).ok();
    let o = u.burrow(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(o.ok().stdout.contains("mine/copy:v1\n"), "{o:#?}");
    u.run("mine/copy:v1", &["true"]).ok();
    // Two names: rmi of one only untags.
    let o = u.burrow(&["rmi", "mine/copy:v1"]);
    assert_eq!(o.ok().stdout, "Untagged: mine/copy:v1\n");
    // In use by a container: refused, then forced leaves a dangling image.
    u.burrow(&["create", "--name", "user", &img, "true"]).ok();
    u.burrow(&["rmi", &img])
        .code(1)
        .stderr_has("used by container");
    u.burrow(&["rmi", "-f", &img]).ok();
    let o = u.burrow(&[
        "images",
        "--filter",
        "dangling=true",
        "--format",
        "{{.Repository}} {{.Tag}}",
    ]);
    assert_eq!(o.ok().stdout, "<none> <none>\n");
    // The container still runs from the dangling image.
    u.burrow(&["start", "-a", "user"]).ok();
    u.burrow(&["rm", "user"]).ok();
    let o = u.burrow(&["image", "prune", "-f"]);
    assert!(o.ok().stdout.contains("deleted: sha256:"), "{o:#?}");
    assert_eq!(u.burrow(&["images", "-q"]).ok().stdout, "");
    // Layers and blobs went with it.
    let layers = std::fs::read_dir(u.data_dir().join("layers"))
        .unwrap()
        .count();
    assert_eq!(layers, 0);
    u.burrow(&["rmi", "nothing:here"])
        .code(1)
        .stderr_has("no such image");
}

#[test]
fn image_inspect_has_docker_fields() {
    let u = User::new("img_inspect");
    let img = u.pull("workuser");
    let o = u.burrow(&["image", "inspect", &img]);
    let v: serde_json::Value = serde_json::from_str(&o.ok().stdout).unwrap();
    let i = &v[0];
    assert!(i["Id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(i["Config"]["User"], "app");
    assert_eq!(i["Config"]["WorkingDir"], "/srv/work");
    assert_eq!(i["Os"], "linux");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(i["RepoTags"][0], img);
    let f = u.burrow(&[
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Cmd}}",
        &img,
    ]);
    assert_eq!(f.ok().stdout, "app [\"sh\"]\n");
}

#[test]
fn layers_keep_whiteouts_opaque_dirs_owners_and_links() {
    let u = User::new("layered");
    let img = u.pull("layered");
    let o = u.run(
        &img,
        &[
            "sh",
            "-c",
            "cat /data/keep; test -e /data/gone || echo gone-absent; \
             stat -c '%h %i' /data/keep /data/hard; ls /opq; \
             stat -c '%u:%g %a' /home/app/owned; stat -c '%a' /data/setuid; \
             find / -xdev -name '.wh.*' | wc -l",
        ],
    );
    o.ok();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(l[0], "keep");
    assert_eq!(l[1], "gone-absent");
    let (a, b) = (l[2], l[3]);
    assert!(a.starts_with("2 ") && a == b, "hard link shared: {o:#?}");
    assert_eq!(l[4], "new", "opaque dir hides old: {o:#?}");
    assert_eq!(l[5], "1000:1000 640");
    assert_eq!(l[6], "4755");
    assert_eq!(l[7], "0");
}

#[test]
fn zstd_plain_schema2_and_multiarch_images() {
    let u = User::new("formats");
    let z = u.pull("zstd");
    u.run(&z, &["true"]).ok();
    // The same layer reached through another image is unpacked once: the zstd, plain and
    // schema2 images carry the same tar (one diff id), so one chain id, one directory.
    let layers = |u: &User| {
        std::fs::read_dir(u.data_dir().join("layers"))
            .unwrap()
            .count()
    };
    let before = layers(&u);
    let p = u.pull("plain");
    u.run(&p, &["true"]).ok();
    let s = u.pull("schema2");
    u.run(&s, &["true"]).ok();
    assert_eq!(
        layers(&u),
        before,
        "one unpacked layer shared by zstd, plain and schema2"
    );
    let m = u.pull("multiarch");
    assert_eq!(u.run(&m, &["cat", "/etc/arch"]).ok().stdout, "amd64\n");
    let arm = format!("{}/fixtures/multiarch:latest", registry());
    let o = u.burrow(&[
        "pull",
        "-q",
        "--tls-verify=false",
        "--platform",
        "linux/arm64/v8",
        &arm,
    ]);
    o.ok();
    let o = u.burrow(&["image", "inspect", "--format", "{{.Architecture}}", &arm]);
    assert_eq!(o.ok().stdout, "arm64\n");
    u.burrow(&[
        "pull",
        "--tls-verify=false",
        "--platform",
        "linux/s390x",
        &arm,
    ])
    .code(125)
    .one_line_error();
}

#[test]
fn registry_errors_are_one_line() {
    let u = User::new("reg_errors");
    u.burrow(&["pull", "--tls-verify=false", "127.0.0.1:1/nothing:here"])
        .code(125)
        .stderr_has("127.0.0.1:1")
        .one_line_error();
    u.burrow(&[
        "pull",
        "--tls-verify=false",
        &format!("{}/fixtures/busybox:nope", registry()),
    ])
    .code(125)
    .one_line_error();
    u.burrow(&["pull", "Bad/Name"]).code(125).one_line_error();
    // Nothing half-written stays behind.
    let blobs = u.data_dir().join("blobs/sha256");
    let n = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(n, 0);
}

#[test]
fn login_pull_private_logout() {
    let u = User::new("auth");
    let reg = var("BURROW_TEST_AUTH_REGISTRY");
    let user = var("BURROW_TEST_AUTH_USER");
    let pass = var("BURROW_TEST_AUTH_PASS");
    let img = format!("{reg}/private/busybox:latest");
    u.burrow(&["pull", "--tls-verify=false", &img])
        .code(125)
        .stderr_has("login")
        .one_line_error();
    u.burrow(&[
        "login",
        "--tls-verify=false",
        "-u",
        &user,
        "-p",
        "wrong",
        &reg,
    ])
    .code(125)
    .one_line_error();
    let o = u.burrow_stdin(
        &[
            "login",
            "--tls-verify=false",
            "-u",
            &user,
            "--password-stdin",
            &reg,
        ],
        &format!("{pass}\n"),
    );
    assert_eq!(o.ok().stdout, "Login Succeeded\n");
    let auth = u.home.join(".config/burrow/auth.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&auth).unwrap()).unwrap();
    assert!(stored["auths"][&reg]["auth"].is_string(), "{stored}");
    u.burrow(&["pull", "-q", "--tls-verify=false", &img]).ok();
    u.run(&img, &["true"]).ok();
    u.burrow(&["logout", &reg]).ok();
    u.burrow(&["logout", &reg])
        .code(125)
        .stderr_has("not logged in");
    // Credentials in ~/.docker/config.json are read too.
    u.burrow(&["rmi", &img]).ok();
    let docker = u.home.join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::write(
        docker.join("config.json"),
        format!("{{\"auths\":{{\"{reg}\":{{\"auth\":\"{token}\"}}}}}}"),
    )
    .unwrap();
    let _ = std::process::Command::new("chown")
        .args(["-R", &format!("{}:", u.name)])
        .arg(&docker)
        .status();
    u.burrow(&["pull", "-q", "--tls-verify=false", &img]).ok();
}

#[test]
fn bearer_token_auth_redirects_and_retries() {
    // tests/fixtures/token_server.py: anonymous tokens for fixtures/*, credentials for the
    // rest; blobs answer 503 once, then redirect to another host name.
    let u = User::new("token");
    let reg = var("BURROW_TEST_TOKEN_REGISTRY");
    let img = format!("{reg}/fixtures/layered:latest");
    u.burrow(&["pull", "-q", "--tls-verify=false", &img]).ok();
    assert_eq!(u.run(&img, &["cat", "/opq/new"]).ok().stdout, "new\n");
    let other = format!("{reg}/other/app:latest");
    u.burrow(&["pull", "--tls-verify=false", &other])
        .code(125)
        .stderr_has("burrow login")
        .one_line_error();
    let user = var("BURROW_TEST_AUTH_USER");
    let pass = var("BURROW_TEST_AUTH_PASS");
    u.burrow(&[
        "login",
        "--tls-verify=false",
        "-u",
        &user,
        "-p",
        &pass,
        &reg,
    ])
    .ok();
    // Now the token covers it, and the registry says it does not exist.
    let o = u.burrow(&["pull", "--tls-verify=false", &other]);
    o.code(125).one_line_error();
    assert!(!o.stderr.contains("burrow login"), "{o:#?}");
    assert!(o.stderr.contains("does not exist"), "{o:#?}");
}

#[test]
fn self_signed_https_needs_tls_verify_false() {
    let u = User::new("tls_self_signed");
    let img = format!(
        "{}/fixtures/busybox:latest",
        var("BURROW_TEST_TLS_REGISTRY")
    );
    u.burrow(&["pull", &img])
        .code(125)
        .stderr_has("certificate")
        .stderr_has("--tls-verify=false")
        .one_line_error();
    u.burrow(&["pull", "-q", "--tls-verify=false", &img]).ok();
    assert_eq!(u.run(&img, &["echo", "over tls"]).ok().stdout, "over tls\n");
}
