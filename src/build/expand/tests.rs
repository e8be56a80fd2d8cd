//! Expansion as a build sees it: Docker's documented examples for ENV, ARG and FROM.

use std::collections::HashMap;

use super::*;
use crate::build::parser::{self, CommandLine, Dockerfile, InstructionKind, NetworkMode};

fn df(text: &str) -> Dockerfile {
    parser::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn kinds(d: &Dockerfile, stage: usize) -> Vec<InstructionKind> {
    d.stages[stage]
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect()
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: value.to_string(),
        legacy: false,
    }
}

fn no_build_args() -> HashMap<String, String> {
    HashMap::new()
}

/// Run a stage's ENV and ARG instructions through a BuildEnv as an executor would, and return
/// every instruction expanded.
fn walk(d: &Dockerfile, build_args: &HashMap<String, String>) -> (BuildEnv, Vec<InstructionKind>) {
    let lex = Lexer::new(d.escape);
    let globals = resolve_meta_args(&lex, &d.meta_args, build_args, &[]).expect("meta args");
    let mut env = BuildEnv::default();
    let mut out = Vec::new();
    for kind in kinds(d, 0) {
        let expanded = expand_instruction(&lex, &kind, &env).expect("expands");
        match &expanded {
            InstructionKind::Env(kvs) => {
                for kv in kvs {
                    env.set_env(&kv.key, &kv.value);
                }
            }
            InstructionKind::Arg(defs) => env
                .declare_args(&lex, defs, build_args, &globals)
                .expect("args"),
            _ => {}
        }
        out.push(expanded);
    }
    (env, out)
}

#[test]
fn env_values_lose_quotes_and_see_earlier_values_only() {
    // Docker's documentation: def=hello, ghi=bye.
    let d = df(
        "FROM busybox\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nENV q=\"a b\" r='$abc' s=a\\ b\n",
    );
    let (env, out) = walk(&d, &no_build_args());
    assert_eq!(
        out[1],
        InstructionKind::Env(vec![kv("abc", "bye"), kv("def", "hello")])
    );
    assert_eq!(out[2], InstructionKind::Env(vec![kv("ghi", "bye")]));
    assert_eq!(
        out[3],
        InstructionKind::Env(vec![kv("q", "a b"), kv("r", "$abc"), kv("s", "a b")])
    );
    assert_eq!(Env::get(&env, "ghi"), Some("bye"));
}

#[test]
fn env_wins_over_arg_of_the_same_name() {
    // Docker's documentation: the RUN sees v1.0.0 whatever --build-arg says.
    let d = df("FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nWORKDIR /$CONT_IMG_VER\n");
    let args = HashMap::from([("CONT_IMG_VER".to_string(), "v2.0.1".to_string())]);
    let (env, out) = walk(&d, &args);
    assert_eq!(out[2], InstructionKind::Workdir("/v1.0.0".to_string()));
    assert_eq!(env.run_env(), vec!["CONT_IMG_VER=v1.0.0".to_string()]);

    // Also when the ARG comes after the ENV.
    let d = df("FROM ubuntu\nENV V=env\nARG V=arg\nUSER $V\n");
    let (_, out) = walk(&d, &no_build_args());
    assert_eq!(out[2], InstructionKind::User("env".to_string()));

    // An ARG alone is seen by later instructions and by RUN, but is not ENV.
    let d = df("FROM ubuntu\nARG user1=someuser\nUSER ${user1:-nobody}\n");
    let (env, out) = walk(&d, &no_build_args());
    assert_eq!(out[1], InstructionKind::User("someuser".to_string()));
    assert!(env.env().is_empty());
    assert_eq!(env.run_env(), vec!["user1=someuser".to_string()]);
}

#[test]
fn args_take_build_args_then_defaults_then_globals() {
    let d = df(
        "ARG VERSION=latest\nARG ONLY_GLOBAL=g\nFROM busybox:$VERSION\nARG VERSION\nARG ONLY_GLOBAL\nARG LOCAL=\"x $VERSION\"\nARG UNSET\nLABEL v=$VERSION g=$ONLY_GLOBAL l=\"$LOCAL\" u=${UNSET:-none}\n",
    );
    let lex = Lexer::new('\\');
    let globals = resolve_meta_args(&lex, &d.meta_args, &no_build_args(), &[]).expect("meta");
    assert_eq!(
        expand_stage(&lex, &d.stages[0], &globals).expect("from"),
        ("busybox:latest".to_string(), None)
    );
    let (_, out) = walk(&d, &no_build_args());
    assert_eq!(
        out[4],
        InstructionKind::Label(vec![
            kv("v", "latest"),
            kv("g", "g"),
            kv("l", "x latest"),
            kv("u", "none")
        ])
    );

    let args = HashMap::from([("VERSION".to_string(), "1.36".to_string())]);
    let globals = resolve_meta_args(&lex, &d.meta_args, &args, &[]).expect("meta");
    assert_eq!(
        expand_stage(&lex, &d.stages[0], &globals).expect("from").0,
        "busybox:1.36"
    );
    let (_, out) = walk(&d, &args);
    assert_eq!(
        out[4],
        InstructionKind::Label(vec![
            kv("v", "1.36"),
            kv("g", "g"),
            kv("l", "x 1.36"),
            kv("u", "none")
        ])
    );
}

#[test]
fn from_sees_only_global_args() {
    let d = df("ARG BASE\nARG PLATFORM=linux/arm64\nFROM --platform=$PLATFORM ${BASE}\n");
    let lex = Lexer::new('\\');
    let globals = resolve_meta_args(&lex, &d.meta_args, &no_build_args(), &[]).expect("meta");
    let err = expand_stage(&lex, &d.stages[0], &globals).unwrap_err();
    assert_eq!(
        err.to_string(),
        "base name (${BASE}) should not be blank (give the ARG it uses a value, or --build-arg)"
    );
    let predefined = [("BUILDPLATFORM".to_string(), "linux/amd64".to_string())];
    let args = HashMap::from([("BASE".to_string(), "alpine".to_string())]);
    let globals = resolve_meta_args(&lex, &d.meta_args, &args, &predefined).expect("meta");
    assert_eq!(
        expand_stage(&lex, &d.stages[0], &globals).expect("from"),
        ("alpine".to_string(), Some("linux/arm64".to_string()))
    );
}

#[test]
fn which_instructions_expand() {
    let d = df(
        "FROM a\nENV P=80 HOME=/root NAME=x\nEXPOSE $P 443/tcp\nRUN echo $HOME\nCMD echo $HOME\nVOLUME $HOME/data /b\nSTOPSIGNAL SIG$NAME\nHEALTHCHECK CMD echo $HOME\nONBUILD WORKDIR $HOME\nMAINTAINER $NAME\n",
    );
    let lex = Lexer::new('\\');
    let mut env = BuildEnv::default();
    for (k, v) in [("P", "80 8080"), ("HOME", "/root"), ("NAME", "TERM")] {
        env.set_env(k, v);
    }
    let k = kinds(&d, 0);
    let expanded: Vec<InstructionKind> = k
        .iter()
        .map(|i| expand_instruction(&lex, i, &env).expect("expands"))
        .collect();
    // EXPOSE splits what a variable expands to into ports.
    assert_eq!(
        expanded[1],
        InstructionKind::Expose(vec!["80".into(), "8080".into(), "443/tcp".into()])
    );
    // RUN, CMD, HEALTHCHECK, ONBUILD and MAINTAINER are left alone.
    for i in [2, 3, 6, 7, 8] {
        assert_eq!(expanded[i], k[i], "{:?}", k[i]);
        assert!(!expands_variables(&k[i]), "{:?}", k[i]);
    }
    assert_eq!(
        expanded[4],
        InstructionKind::Volume(vec!["/root/data".into(), "/b".into()])
    );
    assert_eq!(expanded[5], InstructionKind::StopSignal("SIGTERM".into()));
    assert!(expands_variables(&k[1]) && expands_variables(&k[4]));
}

#[test]
fn copy_and_add() {
    let d = df(
        "FROM a\nCOPY --chown=$U:$U --from=build $SRC \"$DST/\"\nADD --chmod=$MODE --checksum=$SUM https://x/$F /d/\nCOPY --from=$STAGE a b\nCOPY <<EOF <<'RAW' /etc/\n\"$U\" \\$U '$U'\nEOF\n$U\nRAW\n",
    );
    let lex = Lexer::new('\\');
    let env: Vec<(String, String)> = [
        ("U", "app"),
        ("SRC", "src"),
        ("DST", "/opt"),
        ("MODE", "0640"),
        ("SUM", "sha256:1"),
        ("F", "f.tgz"),
        ("STAGE", "x"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let k = kinds(&d, 0);
    let InstructionKind::Copy(c) = expand_instruction(&lex, &k[0], &env).expect("copy") else {
        panic!()
    };
    assert_eq!(
        (c.chown.as_deref(), c.from.as_deref()),
        (Some("app:app"), Some("build"))
    );
    assert_eq!(
        (c.sources.paths.clone(), c.sources.dest.as_str()),
        (vec!["src".to_string()], "/opt/")
    );
    let InstructionKind::Add(a) = expand_instruction(&lex, &k[1], &env).expect("add") else {
        panic!()
    };
    assert_eq!(
        (a.chmod.as_deref(), a.checksum.as_deref()),
        (Some("0640"), Some("sha256:1"))
    );
    assert_eq!(a.sources.paths, vec!["https://x/f.tgz".to_string()]);
    assert_eq!(
        expand_instruction(&lex, &k[2], &env).unwrap_err(),
        ExpandError::CopyFromVariable
    );
    let InstructionKind::Copy(c) = expand_instruction(&lex, &k[3], &env).expect("heredocs") else {
        panic!()
    };
    // A heredoc body is a file: variables expand, quotes stay; a quoted name keeps it raw.
    assert_eq!(c.sources.inline[0].data, "\"app\" $U 'app'\n");
    assert_eq!(c.sources.inline[1].data, "$U\n");
}

#[test]
fn run_mounts_expand_then_parse() {
    let d = df(
        "FROM a\nRUN --mount=type=$T,target=$HOME/.cache,id=${ID:-default} --network=host make\n",
    );
    let InstructionKind::Run(run) = &kinds(&d, 0)[0] else {
        panic!()
    };
    assert!(expands_variables(&kinds(&d, 0)[0]));
    assert_eq!(
        (run.network, &run.command),
        (NetworkMode::Host, &CommandLine::Shell("make".into()))
    );
    let lex = Lexer::new('\\');
    let env: Vec<(String, String)> = vec![
        ("T".into(), "cache".into()),
        ("HOME".into(), "/root".into()),
    ];
    let mounts = expand_mounts(&lex, run, &env).expect("mounts");
    assert_eq!(
        mounts[0].kind,
        crate::build::parser::mount::MountType::Cache
    );
    assert_eq!(mounts[0].target.as_deref(), Some("/root/.cache"));
    assert_eq!(mounts[0].id.as_deref(), Some("default"));
    let env: Vec<(String, String)> = vec![("T".into(), "nfs".into())];
    assert!(matches!(
        expand_mounts(&lex, run, &env),
        Err(ExpandError::Mount(_))
    ));
}

#[test]
fn errors_say_which_word() {
    let lex = Lexer::new('\\');
    let kind = InstructionKind::Workdir("${DIR:?set DIR with --build-arg}".into());
    let err = expand_instruction(&lex, &kind, &BuildEnv::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to process \"${DIR:?set DIR with --build-arg}\": DIR: set DIR with --build-arg"
    );
}

#[test]
fn backtick_escape_for_windows_style_paths() {
    let d = df("# escape=`\nFROM a\nENV DIR=c:\\tools\nWORKDIR $DIR`$HOME\n");
    let (_, out) = walk(&d, &no_build_args());
    assert_eq!(out[1], InstructionKind::Workdir("c:\\tools$HOME".into()));
}

#[test]
fn image_env_is_the_starting_point() {
    let env = BuildEnv::from_image_env(&[
        "PATH=/usr/bin".to_string(),
        "EMPTY=".to_string(),
        "PATH=/bin".to_string(),
    ]);
    assert_eq!(Env::get(&env, "PATH"), Some("/bin"));
    assert_eq!(Env::get(&env, "EMPTY"), Some(""));
    assert_eq!(
        env.run_env(),
        vec!["PATH=/bin".to_string(), "EMPTY=".to_string()]
    );
}
