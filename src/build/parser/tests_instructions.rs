//! The typed step: what a user's Dockerfile becomes, and Docker's errors for what it
//! refuses.

use std::path::PathBuf;

use super::error::ParseErrorKind;
use super::*;

fn kinds(text: &str) -> Vec<InstructionKind> {
    let df = parse(text).unwrap_or_else(|e| panic!("{e}"));
    df.stages
        .into_iter()
        .flat_map(|s| s.instructions.into_iter().map(|i| i.kind))
        .collect()
}

fn one(text: &str) -> InstructionKind {
    let mut k = kinds(&format!("FROM scratch\n{text}"));
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
fn stages_meta_args_lines_and_original_text() {
    let text = "# syntax=docker/dockerfile:1\nARG BASE=alpine\nARG TAG\n\nFROM --platform=$BUILDPLATFORM ${BASE}:${TAG:-3} AS Build\nRUN apk add \\\n    gcc\nFROM scratch\nCOPY --from=build /out /\n";
    let df = parse(text).expect("parses");
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.meta_args.len(), 2);
    assert_eq!(df.meta_args[0].line, 2);
    assert_eq!(
        df.meta_args[0].args,
        vec![ArgDef {
            name: s("BASE"),
            default: Some(s("alpine"))
        }]
    );
    assert_eq!(
        df.meta_args[1].args,
        vec![ArgDef {
            name: s("TAG"),
            default: None
        }]
    );
    assert_eq!(df.stages.len(), 2);
    let build = &df.stages[0];
    assert_eq!(build.name.as_deref(), Some("build"));
    assert_eq!(build.base, "${BASE}:${TAG:-3}");
    assert_eq!(build.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(build.line, 5);
    let run = &build.instructions[0];
    assert_eq!((run.line, run.end_line), (6, 7));
    assert_eq!(run.original, "RUN apk add     gcc");
    assert_eq!(run.kind.keyword(), "RUN");
    let copy = &df.stages[1].instructions[0];
    assert_eq!(copy.line, 9);
    let InstructionKind::Copy(c) = &copy.kind else {
        panic!("{copy:?}")
    };
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.sources.paths, vec![s("/out")]);
    assert_eq!(c.sources.dest, "/");
}

#[test]
fn errors_name_the_line() {
    let text = "FROM a\n\n\n\n\n\n\n\n\n\n\nBOGUS bar\n";
    assert_eq!(error(text), "Dockerfile:12: unknown instruction: BOGUS");
    // Docker suggests the closest instruction (Levenshtein distance under 3).
    assert_eq!(
        error("FROM a\nFOO bar\n"),
        "Dockerfile:2: unknown instruction: FOO (did you mean FROM?)"
    );
    assert_eq!(
        error("FROM a\nFORM b\n"),
        "Dockerfile:2: unknown instruction: FORM (did you mean FROM?)"
    );
    assert_eq!(
        error("FROM a\nrunn b\n"),
        "Dockerfile:2: unknown instruction: runn (did you mean run?)"
    );
    let named = parse_named("build/Dockerfile.dev", "RUN x\n").unwrap_err();
    assert_eq!(
        named.to_string(),
        "build/Dockerfile.dev:1: no build stage in current context (the first instruction other than ARG must be FROM)"
    );
    assert_eq!(
        error("FROM a b\n"),
        "Dockerfile:1: FROM requires either one or three arguments"
    );
    assert_eq!(
        error("FROM a AS 1st\n"),
        "Dockerfile:1: invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
}

#[test]
fn keywords_are_case_insensitive() {
    let k = kinds("from a\nRun echo hi\nwOrKdIr /x\n");
    assert_eq!(
        k[0],
        InstructionKind::Run(Run {
            command: CommandLine::Shell(s("echo hi")),
            heredocs: vec![],
            mounts: vec![],
            network: NetworkMode::Default,
            security: Security::Sandbox,
            devices: vec![],
        })
    );
    assert_eq!(k[1], InstructionKind::Workdir(s("/x")));
}

#[test]
fn env_and_label_in_both_forms() {
    let kv = |k: &str, v: &str, legacy| KeyValue {
        key: s(k),
        value: s(v),
        legacy,
    };
    assert_eq!(
        one("ENV A 1 2"),
        InstructionKind::Env(vec![kv("A", "1 2", true)])
    );
    assert_eq!(
        one("ENV A=1 B=\"x y\" C=a\\ b"),
        InstructionKind::Env(vec![
            kv("A", "1", false),
            kv("B", "\"x y\"", false),
            kv("C", "a\\ b", false)
        ])
    );
    assert_eq!(
        one("LABEL org.opencontainers.image.title=\"burrow\" version=1"),
        InstructionKind::Label(vec![
            kv("org.opencontainers.image.title", "\"burrow\"", false),
            kv("version", "1", false)
        ])
    );
    // The forms do not mix.
    assert_eq!(
        error("FROM a\nLABEL a=1 version 1\n"),
        "Dockerfile:2: syntax error - can't find = in \"version\"; must be of the form: name=value"
    );
    assert_eq!(
        one("LABEL maintainer me@example.org"),
        InstructionKind::Label(vec![kv("maintainer", "me@example.org", true)])
    );
    assert_eq!(
        error("FROM a\nENV A\n"),
        "Dockerfile:2: ENV must have two arguments"
    );
    assert_eq!(
        error("FROM a\nENV A=1 B\n"),
        "Dockerfile:2: syntax error - can't find = in \"B\"; must be of the form: name=value"
    );
    assert_eq!(
        error("FROM a\nENV =1\n"),
        "Dockerfile:2: ENV names can not be blank"
    );
    assert_eq!(
        error("FROM a\nLABEL\n"),
        "Dockerfile:2: LABEL requires at least one argument"
    );
}

#[test]
fn exec_and_shell_forms() {
    assert_eq!(
        one("CMD [\"nginx\", \"-g\", \"daemon off;\"]"),
        InstructionKind::Cmd(CommandLine::Exec(vec![
            s("nginx"),
            s("-g"),
            s("daemon off;")
        ]))
    );
    assert_eq!(
        one("CMD nginx -g 'daemon off;'"),
        InstructionKind::Cmd(CommandLine::Shell(s("nginx -g 'daemon off;'")))
    );
    assert_eq!(
        one("ENTRYPOINT []"),
        InstructionKind::Entrypoint(CommandLine::Exec(vec![]))
    );
    // A malformed array is a shell command, as in Docker.
    assert_eq!(
        one("ENTRYPOINT [\"a\" \"b\"]"),
        InstructionKind::Entrypoint(CommandLine::Shell(s("[\"a\" \"b\"]")))
    );
    assert_eq!(
        one("SHELL [\"/bin/bash\", \"-c\"]"),
        InstructionKind::Shell(vec![s("/bin/bash"), s("-c")])
    );
    assert_eq!(
        error("FROM a\nSHELL /bin/bash -c\n"),
        "Dockerfile:2: SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        error("FROM a\nCMD [\"a\", [\"b\"]]\n"),
        "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"
    );
}

#[test]
fn copy_and_add_flags() {
    let InstructionKind::Copy(c) =
        one("COPY --from=build --chown=1000:1000 --chmod=0755 --link a b /dst/")
    else {
        panic!()
    };
    assert_eq!(
        (
            c.from.as_deref(),
            c.chown.as_deref(),
            c.chmod.as_deref(),
            c.link
        ),
        (Some("build"), Some("1000:1000"), Some("0755"), true)
    );
    assert_eq!(c.sources.paths, vec![s("a"), s("b")]);
    let InstructionKind::Copy(c) = one("COPY [\"a b\", \"/d\"]") else {
        panic!()
    };
    assert_eq!(c.sources.paths, vec![s("a b")]);
    let InstructionKind::Copy(c) = one("COPY --link=false --exclude=*.md --exclude=*.txt . /src")
    else {
        panic!()
    };
    assert!(!c.link);
    assert_eq!(c.excludes, vec![s("*.md"), s("*.txt")]);
    let InstructionKind::Add(a) =
        one("ADD --checksum=sha256:abc --keep-git-dir https://example.org/x.tar.gz /x")
    else {
        panic!()
    };
    assert_eq!(
        (a.checksum.as_deref(), a.keep_git_dir, a.unpack),
        (Some("sha256:abc"), Some(true), None)
    );

    assert_eq!(
        error("FROM a\nCOPY --form=x a b\n"),
        "Dockerfile:2: unknown flag: --form (did you mean from?)"
    );
    assert_eq!(
        error("FROM a\nCOPY --from=a --from=b a b\n"),
        "Dockerfile:2: duplicate flag specified: --from"
    );
    assert_eq!(
        error("FROM a\nCOPY --from a b\n"),
        "Dockerfile:2: missing a value on flag: --from"
    );
    assert_eq!(
        error("FROM a\nCOPY --link=maybe a b\n"),
        "Dockerfile:2: expecting boolean value for flag --link, not: maybe"
    );
    assert_eq!(
        error("FROM a\nCOPY --from=x a\n"),
        "Dockerfile:2: COPY requires at least two arguments, but only one was provided; destination could not be determined"
    );
    assert_eq!(
        error("FROM a\nWORKDIR --x=1 /a\n"),
        "Dockerfile:2: unknown flag: --x"
    );
    assert_eq!(
        error("FROM --platfrom=linux/amd64 a\n"),
        "Dockerfile:1: unknown flag: --platfrom (did you mean platform?)"
    );
}

#[test]
fn heredocs_in_run_and_copy() {
    let text = "FROM a\nRUN <<EOF bash\nset -e\necho $HOME\nEOF\nCOPY <<-EOT <<'RAW' /dst/\n\thello $NAME\n\tEOT\n$literal\nRAW\nRUN cat <<A > /a && cat <<\"B\" > /b\n1\nA\n2\nB\n";
    let df = parse(text).expect("parses");
    let ins = &df.stages[0].instructions;
    let InstructionKind::Run(r) = &ins[0].kind else {
        panic!()
    };
    assert_eq!(r.command, CommandLine::Shell(s("<<EOF bash")));
    assert_eq!(r.heredocs.len(), 1);
    assert_eq!(
        (r.heredocs[0].name.as_str(), r.heredocs[0].content.as_str()),
        ("EOF", "set -e\necho $HOME\n")
    );
    assert_eq!((ins[0].line, ins[0].end_line), (2, 5));
    let InstructionKind::Copy(c) = &ins[1].kind else {
        panic!()
    };
    assert!(c.sources.paths.is_empty());
    assert_eq!(
        c.sources.inline,
        vec![
            InlineFile {
                name: s("EOT"),
                data: s("hello $NAME\n"),
                expand: true
            },
            InlineFile {
                name: s("RAW"),
                data: s("$literal\n"),
                expand: false
            },
        ]
    );
    assert_eq!(c.sources.dest, "/dst/");
    let InstructionKind::Run(r) = &ins[2].kind else {
        panic!()
    };
    let docs: Vec<(&str, &str, bool)> = r
        .heredocs
        .iter()
        .map(|d| (d.name.as_str(), d.content.as_str(), d.expand))
        .collect();
    assert_eq!(docs, vec![("A", "1\n", true), ("B", "2\n", false)]);
    assert_eq!(
        error("FROM a\nCOPY /foo <<EOF\nEOF\n"),
        "Dockerfile:2: COPY cannot accept a heredoc as a destination"
    );
}

#[test]
fn onbuild() {
    assert_eq!(
        one("ONBUILD RUN echo hi"),
        InstructionKind::Onbuild(Onbuild {
            expression: s("RUN echo hi")
        })
    );
    assert_eq!(
        one("onbuild   COPY . /app"),
        InstructionKind::Onbuild(Onbuild {
            expression: s("COPY . /app")
        })
    );
    let InstructionKind::Onbuild(o) = one("ONBUILD RUN <<EOF\necho hi\nEOF") else {
        panic!()
    };
    assert_eq!(o.expression, "RUN <<EOF\necho hi\nEOF");
    assert_eq!(
        error("FROM a\nONBUILD ONBUILD RUN x\n"),
        "Dockerfile:2: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        error("FROM a\nONBUILD FROM b\n"),
        "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        error("FROM a\nONBUILD MAINTAINER me\n"),
        "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger"
    );

    let t = parse_trigger(&o.expression, '\\').expect("trigger parses");
    let InstructionKind::Run(r) = t.kind else {
        panic!()
    };
    assert_eq!(r.heredocs[0].content, "echo hi\n");
    assert_eq!(
        parse_trigger("COPY a b\nRUN x", '\\').unwrap_err().kind,
        ParseErrorKind::OnbuildExpression
    );
    assert!(matches!(
        parse_trigger("FROM x", '\\').unwrap_err().kind,
        ParseErrorKind::OnbuildTrigger(_)
    ));
}

#[test]
fn the_other_instructions() {
    assert_eq!(
        one("MAINTAINER Jane Doe <jane@example.org>"),
        InstructionKind::Maintainer(s("Jane Doe <jane@example.org>"))
    );
    assert_eq!(
        one("EXPOSE 8080/tcp 443 53/udp"),
        InstructionKind::Expose(vec![s("443"), s("53/udp"), s("8080/tcp")])
    );
    assert_eq!(
        one("VOLUME [\"/data\", \"/logs\"]"),
        InstructionKind::Volume(vec![s("/data"), s("/logs")])
    );
    assert_eq!(
        one("VOLUME /data /logs"),
        InstructionKind::Volume(vec![s("/data"), s("/logs")])
    );
    assert_eq!(one("USER app:app"), InstructionKind::User(s("app:app")));
    assert_eq!(
        one("STOPSIGNAL SIGTERM"),
        InstructionKind::StopSignal(s("SIGTERM"))
    );
    assert_eq!(
        one("ARG A B=2 C=\"x y\""),
        InstructionKind::Arg(vec![
            ArgDef {
                name: s("A"),
                default: None
            },
            ArgDef {
                name: s("B"),
                default: Some(s("2"))
            },
            ArgDef {
                name: s("C"),
                default: Some(s("\"x y\""))
            },
        ])
    );
    assert_eq!(
        error("FROM a\nARG =x\n"),
        "Dockerfile:2: ARG names can not be blank"
    );
    // USER takes the rest of the line as one argument.
    assert_eq!(one("USER a b"), InstructionKind::User(s("a b")));
    assert_eq!(
        error("FROM a\nUSER\n"),
        "Dockerfile:2: USER requires exactly one argument"
    );
    assert_eq!(
        error("FROM a\nWORKDIR\n"),
        "Dockerfile:2: WORKDIR requires exactly one argument"
    );
    assert_eq!(
        error("FROM a\nVOLUME [\"\"]\n"),
        "Dockerfile:2: VOLUME specified can not be an empty string"
    );
    assert_eq!(
        error("FROM a\nEXPOSE\n"),
        "Dockerfile:2: EXPOSE requires at least one argument"
    );
}

/// Every positive BuildKit test file through the typed step too: most are real Dockerfiles;
/// those that are not are listed with what Docker says about them.
#[test]
fn buildkit_testfiles_through_the_instructions_step() {
    let refused: &[(&str, &str)] = &[
        ("flags", "Dockerfile:3: unknown flag: --user"),
        (
            "health",
            "Dockerfile:4: HEALTHCHECK requires at least one argument",
        ),
        (
            "jeztah-invalid-json-json-inside-string",
            "Dockerfile:1: no build stage in current context",
        ),
        (
            "jeztah-invalid-json-json-inside-string-double",
            "Dockerfile:1: no build stage in current context",
        ),
        (
            "jeztah-invalid-json-single-quotes",
            "Dockerfile:1: no build stage in current context",
        ),
        (
            "jeztah-invalid-json-unterminated-bracket",
            "Dockerfile:1: no build stage in current context",
        ),
        (
            "jeztah-invalid-json-unterminated-string",
            "Dockerfile:1: no build stage in current context",
        ),
        ("json", "Dockerfile:1: no build stage in current context"),
    ];
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/build/parser/testfiles"]
        .iter()
        .collect();
    let mut entries: Vec<PathBuf> = fs_err::read_dir(&dir)
        .expect("data")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    let mut surprises = Vec::new();
    for case in entries {
        let name = case
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = fs_err::read_to_string(case.join("Dockerfile")).expect("Dockerfile");
        let result = parse(&text);
        match (refused.iter().find(|(n, _)| *n == name), result) {
            (None, Ok(_)) => {}
            (Some((_, why)), Err(e)) if e.to_string().contains(why) => {}
            (expected, got) => {
                surprises.push(format!("{name}: expected {expected:?}, got {got:?}"))
            }
        }
    }
    assert!(surprises.is_empty(), "{}", surprises.join("\n"));
}
