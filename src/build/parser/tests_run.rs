//! The typed step for RUN's flags, `--mount` values and HEALTHCHECK.

use std::time::Duration;

use super::*;

fn one(text: &str) -> InstructionKind {
    let df = parse(&format!("FROM scratch\n{text}")).unwrap_or_else(|e| panic!("{e}"));
    let mut k: Vec<InstructionKind> = df.stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect();
    assert_eq!(k.len(), 1, "{text:?}");
    k.remove(0)
}

fn error(text: &str) -> String {
    parse(text).map(|_| ()).unwrap_err().to_string()
}

fn s(v: &str) -> String {
    v.to_string()
}
#[test]
fn run_flags() {
    let InstructionKind::Run(r) = one(
        "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none --security=insecure make",
    ) else {
        panic!()
    };
    assert_eq!(
        r.mounts,
        vec![s("type=cache,target=/root/.cache"), s("type=secret,id=tok")]
    );
    assert_eq!(
        (r.network, r.security),
        (NetworkMode::None, Security::Insecure)
    );
    assert_eq!(r.command, CommandLine::Shell(s("make")));
    assert_eq!(
        error("FROM a\nRUN --network=bridge x\n"),
        "Dockerfile:2: invalid network mode \"bridge\" (use default, none or host)"
    );
    assert_eq!(
        error("FROM a\nRUN --mount=type=bind,from=$X x\n"),
        "Dockerfile:2: 'from' doesn't support variable expansion, define alias stage instead"
    );
    // Quotes in flags are removed by the flag reader; an escaped one reaches the CSV reader.
    assert_eq!(
        error("FROM a\nRUN --mount=type=bind,source=a\\\"b,target=/x x\n"),
        "Dockerfile:2: failed to parse csv mounts: bare \" in non-quoted-field"
    );
}

#[test]
fn healthcheck() {
    let hc = |test: Vec<&str>, i: u64, t: u64, r: u32| Healthcheck {
        test: test.into_iter().map(s).collect(),
        interval: Duration::from_secs(i),
        timeout: Duration::from_secs(t),
        start_period: Duration::ZERO,
        start_interval: Duration::ZERO,
        retries: r,
    };
    assert_eq!(
        one("HEALTHCHECK NONE"),
        InstructionKind::Healthcheck(hc(vec!["NONE"], 0, 0, 0))
    );
    assert_eq!(
        one("HEALTHCHECK --interval=5s --timeout=3s --retries=3 CMD curl -f http://localhost/"),
        InstructionKind::Healthcheck(hc(vec!["CMD-SHELL", "curl -f http://localhost/"], 5, 3, 3))
    );
    assert_eq!(
        one("healthcheck --interval=1m30s cmd [\"/check\", \"-q\"]"),
        InstructionKind::Healthcheck(hc(vec!["CMD", "/check", "-q"], 90, 0, 0))
    );
    let InstructionKind::Healthcheck(h) =
        one("HEALTHCHECK --start-period=1.5s --start-interval=500ms CMD true")
    else {
        panic!()
    };
    assert_eq!(
        (h.start_period, h.start_interval),
        (Duration::from_millis(1500), Duration::from_millis(500))
    );
    assert_eq!(
        error("FROM a\nHEALTHCHECK NONE x\n"),
        "Dockerfile:2: HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        error("FROM a\nHEALTHCHECK CMD\n"),
        "Dockerfile:2: missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        error("FROM a\nHEALTHCHECK CONNECT TCP 7000\n"),
        "Dockerfile:2: unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        error("FROM a\nHEALTHCHECK --interval=5 CMD x\n"),
        "Dockerfile:2: invalid duration \"5\" for --interval (write it as Go does: 30s, 1m30s, 500ms)"
    );
    assert_eq!(
        error("FROM a\nHEALTHCHECK --timeout=10us CMD x\n"),
        "Dockerfile:2: interval \"--timeout\" cannot be less than 1ms"
    );
    assert_eq!(
        error("FROM a\nHEALTHCHECK --retries=-1 CMD x\n"),
        "Dockerfile:2: --retries cannot be negative (-1)"
    );
    assert_eq!(
        error("FROM a\nHEALTHCHECK --retries=x CMD x\n"),
        "Dockerfile:2: invalid value \"x\" for --retries (give a whole number)"
    );
}

#[test]
fn mounts_parse_once_expanded() {
    use super::mount::{MountError, MountType, Sharing, parse_mount};
    let mut id = |w: &str| Ok(w.to_string());
    let m = parse_mount(
        "type=cache,target=/root/.cache,sharing=locked,id=go,mode=0755,uid=1000",
        Some(&mut id),
    )
    .expect("parses");
    assert_eq!(
        (
            m.kind,
            m.target.as_deref(),
            m.sharing,
            m.id.as_deref(),
            m.mode,
            m.uid,
            m.read_only
        ),
        (
            MountType::Cache,
            Some("/root/.cache"),
            Some(Sharing::Locked),
            Some("go"),
            Some(0o755),
            Some(1000),
            false
        )
    );
    let m = parse_mount("type=bind,source=.,target=/src", Some(&mut id)).expect("parses");
    assert!(m.read_only, "bind mounts are read-only unless rw");
    let m = parse_mount("type=bind,target=/src,rw", Some(&mut id)).expect("parses");
    assert!(!m.read_only);
    let m = parse_mount("type=tmpfs,target=/tmp,size=64m", Some(&mut id)).expect("parses");
    assert_eq!(m.size, Some(64 << 20));
    let m = parse_mount(
        "type=secret,id=aws,target=/root/.aws/credentials,required",
        Some(&mut id),
    )
    .expect("parses");
    assert!(m.required);
    assert_eq!(
        parse_mount("type=volume,target=/x", Some(&mut id)).unwrap_err(),
        MountError::Type(s("volume"))
    );
    assert_eq!(
        parse_mount("type=bind,target=/x,mode=0700", Some(&mut id))
            .unwrap_err()
            .to_string(),
        "mode not allowed for \"bind\" type mounts"
    );
    assert_eq!(
        parse_mount("type=bind,tagret=/x", Some(&mut id))
            .unwrap_err()
            .to_string(),
        "unexpected key 'tagret' in 'tagret=/x' (did you mean target?)"
    );
    assert_eq!(
        parse_mount("type=secret", Some(&mut id)).unwrap_err(),
        MountError::SecretTarget
    );
    assert_eq!(
        parse_mount("type=bind,target=/x,sharing=shared", Some(&mut id)).unwrap_err(),
        MountError::SharingNotCache(MountType::Bind)
    );
    assert_eq!(
        parse_mount("type=cache,target=/x,ro=maybe", Some(&mut id))
            .unwrap_err()
            .to_string(),
        "invalid value for ro: maybe"
    );
    let m = parse_mount("\"type=bind,source=a,b\",target=/x", Some(&mut id));
    assert!(m.is_err(), "a quoted field is one field: {m:?}");
}
