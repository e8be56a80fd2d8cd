//! Syntax nodes given meaning: each instruction's arguments and flags checked and typed, as
//! BuildKit's `instructions/parse.go` does, and grouped into stages.

use std::time::Duration;

use super::ast::*;
use super::error::{ParseErrorKind, closest};
use super::flags::{Flags, Kind, go_duration};
use super::heredoc::{chomp, parse_heredoc};
use super::mount::parse_mount;
use super::node::Node;
use super::syntax::SyntaxTree;

const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

type Result<T> = std::result::Result<T, ParseErrorKind>;

enum Parsed {
    From(Stage),
    Instruction(InstructionKind),
}

/// Give every node its meaning and group the instructions into stages. Errors carry the
/// line of the instruction.
pub(super) fn build(tree: SyntaxTree) -> std::result::Result<Dockerfile, (usize, ParseErrorKind)> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &tree.nodes {
        let at = |kind| (node.start_line, kind);
        match parse_node(node).map_err(at)? {
            Parsed::From(stage) => stages.push(stage),
            Parsed::Instruction(kind) => {
                let Some(stage) = stages.last_mut() else {
                    match kind {
                        InstructionKind::Arg(args) => {
                            meta_args.push(ArgInstruction {
                                line: node.start_line,
                                original: node.original.trim().to_string(),
                                args,
                            });
                            continue;
                        }
                        _ => return Err(at(ParseErrorKind::NoStage)),
                    }
                };
                stage.instructions.push(Instruction {
                    line: node.start_line,
                    end_line: node.end_line,
                    original: node.original.trim().to_string(),
                    kind,
                });
            }
        }
    }
    Ok(Dockerfile {
        escape: tree.escape,
        syntax: tree.syntax,
        check: tree.check,
        meta_args,
        stages,
        warnings: tree.warnings,
    })
}

/// The one instruction of an ONBUILD trigger.
pub(super) fn trigger(
    tree: SyntaxTree,
) -> std::result::Result<Instruction, (usize, ParseErrorKind)> {
    let [node] = tree.nodes.as_slice() else {
        return Err((1, ParseErrorKind::OnbuildExpression));
    };
    match parse_node(node).map_err(|k| (node.start_line, k))? {
        Parsed::From(_) => Err((
            node.start_line,
            ParseErrorKind::OnbuildTrigger("FROM".into()),
        )),
        Parsed::Instruction(kind) => Ok(Instruction {
            line: node.start_line,
            end_line: node.end_line,
            original: node.original.trim().to_string(),
            kind,
        }),
    }
}

fn no_flags(node: &Node) -> Result<()> {
    Flags::parse(&node.flags, &[]).map(|_| ())
}

fn parse_node(node: &Node) -> Result<Parsed> {
    let args = node.words();
    let keyword = node.keyword();
    let kind = match keyword.as_str() {
        "from" => return parse_from(node, &args).map(Parsed::From),
        "env" => {
            no_flags(node)?;
            InstructionKind::Env(key_values(&args, "ENV")?)
        }
        "label" => {
            no_flags(node)?;
            InstructionKind::Label(key_values(&args, "LABEL")?)
        }
        "maintainer" => {
            let [one] = exactly_one(&args, "MAINTAINER")?;
            no_flags(node)?;
            InstructionKind::Maintainer(one)
        }
        "add" => InstructionKind::Add(parse_add(node, &args)?),
        "copy" => InstructionKind::Copy(parse_copy(node, &args)?),
        "onbuild" => InstructionKind::Onbuild(parse_onbuild(node, &args)?),
        "workdir" => {
            let [one] = exactly_one(&args, "WORKDIR")?;
            no_flags(node)?;
            InstructionKind::Workdir(one)
        }
        "run" => InstructionKind::Run(parse_run(node, &args)?),
        "cmd" => {
            no_flags(node)?;
            InstructionKind::Cmd(command_line(node, &args))
        }
        "entrypoint" => {
            no_flags(node)?;
            InstructionKind::Entrypoint(command_line(node, &args))
        }
        "healthcheck" => InstructionKind::Healthcheck(parse_healthcheck(node, &args)?),
        "expose" => {
            if args.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument("EXPOSE"));
            }
            no_flags(node)?;
            let mut ports = args;
            ports.sort();
            InstructionKind::Expose(ports)
        }
        "user" => {
            let [one] = exactly_one(&args, "USER")?;
            no_flags(node)?;
            InstructionKind::User(one)
        }
        "volume" => {
            if args.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument("VOLUME"));
            }
            no_flags(node)?;
            let volumes: Vec<String> = args.iter().map(|v| v.trim().to_string()).collect();
            if volumes.iter().any(String::is_empty) {
                return Err(ParseErrorKind::EmptyVolume);
            }
            InstructionKind::Volume(volumes)
        }
        // Docker does not look at STOPSIGNAL's or ARG's flags.
        "stopsignal" => {
            let [one] = exactly_one(&args, "STOPSIGNAL")?;
            InstructionKind::StopSignal(one)
        }
        "arg" => InstructionKind::Arg(parse_arg(&args)?),
        "shell" => {
            no_flags(node)?;
            if args.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument("SHELL"));
            }
            if !node.json {
                return Err(ParseErrorKind::NotJson("SHELL"));
            }
            InstructionKind::Shell(args)
        }
        _ => {
            return Err(ParseErrorKind::UnknownInstruction {
                name: node.cmd.clone(),
                suggestion: closest(&node.cmd, INSTRUCTIONS, false),
            });
        }
    };
    Ok(Parsed::Instruction(kind))
}

fn exactly_one(args: &[String], keyword: &'static str) -> Result<[String; 1]> {
    match args {
        [one] => Ok([one.clone()]),
        _ => Err(ParseErrorKind::ExactlyOneArgument(keyword)),
    }
}

/// ENV and LABEL arguments come from the syntax as (key, value, separator) triples.
fn key_values(args: &[String], keyword: &'static str) -> Result<Vec<KeyValue>> {
    if args.is_empty() {
        return Err(ParseErrorKind::AtLeastOneArgument(keyword));
    }
    args.chunks(3)
        .map(|t| match t {
            [k, ..] if k.is_empty() => Err(ParseErrorKind::BlankName(keyword)),
            [k, v, sep] => Ok(KeyValue {
                key: k.clone(),
                value: v.clone(),
                legacy: sep.is_empty(),
            }),
            _ => Err(ParseErrorKind::MissingValue(keyword)),
        })
        .collect()
}

fn parse_from(node: &Node, args: &[String]) -> Result<Stage> {
    let name = match args {
        [_] => None,
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                });
            if !valid {
                return Err(ParseErrorKind::StageName(name.clone()));
            }
            Some(lower)
        }
        _ => return Err(ParseErrorKind::FromArguments),
    };
    let flags = Flags::parse(&node.flags, &[("platform", Kind::String)])?;
    Ok(Stage {
        name,
        base: args[0].clone(),
        platform: flags.string("platform").filter(|p| !p.is_empty()),
        line: node.start_line,
        original: node.original.trim().to_string(),
        instructions: Vec::new(),
    })
}

/// Sources and destination of COPY and ADD; `<<NAME` sources are the heredocs' bodies.
fn sources(node: &Node, args: &[String], keyword: &'static str) -> Result<Sources> {
    let Some((dest, srcs)) = args.split_last() else {
        return Err(ParseErrorKind::NoDestination(keyword));
    };
    if matches!(parse_heredoc(dest), Ok(Some(_))) {
        return Err(ParseErrorKind::HeredocDestination(keyword));
    }
    let mut out = Sources {
        paths: Vec::new(),
        inline: Vec::new(),
        dest: dest.clone(),
    };
    for src in srcs {
        match parse_heredoc(src) {
            Ok(Some(h)) => {
                let body = node
                    .heredocs
                    .iter()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                out.inline.push(InlineFile {
                    data: if h.chomp { chomp(&body) } else { body },
                    name: h.name,
                    expand: h.expand,
                });
            }
            _ => out.paths.push(src.clone()),
        }
    }
    Ok(out)
}

fn parse_add(node: &Node, args: &[String]) -> Result<Add> {
    if args.len() < 2 {
        return Err(ParseErrorKind::NoDestination("ADD"));
    }
    let f = Flags::parse(
        &node.flags,
        &[
            ("chown", Kind::String),
            ("chmod", Kind::String),
            ("link", Kind::Bool),
            ("keep-git-dir", Kind::Bool),
            ("checksum", Kind::String),
            ("unpack", Kind::Bool),
            ("exclude", Kind::Strings),
        ],
    )?;
    Ok(Add {
        sources: sources(node, args, "ADD")?,
        chown: f.string("chown"),
        chmod: f.string("chmod"),
        link: f.bool("link").unwrap_or(false),
        keep_git_dir: f.bool("keep-git-dir"),
        checksum: f.string("checksum"),
        unpack: f.bool("unpack"),
        excludes: f.strings("exclude"),
    })
}

fn parse_copy(node: &Node, args: &[String]) -> Result<Copy> {
    if args.len() < 2 {
        return Err(ParseErrorKind::NoDestination("COPY"));
    }
    let f = Flags::parse(
        &node.flags,
        &[
            ("chown", Kind::String),
            ("from", Kind::String),
            ("chmod", Kind::String),
            ("link", Kind::Bool),
            ("exclude", Kind::Strings),
            ("parents", Kind::Bool),
        ],
    )?;
    Ok(Copy {
        sources: sources(node, args, "COPY")?,
        from: f.string("from"),
        chown: f.string("chown"),
        chmod: f.string("chmod"),
        link: f.bool("link").unwrap_or(false),
        parents: f.bool("parents").unwrap_or(false),
        excludes: f.strings("exclude"),
    })
}

fn parse_onbuild(node: &Node, args: &[String]) -> Result<Onbuild> {
    let Some(first) = args.first() else {
        return Err(ParseErrorKind::AtLeastOneArgument("ONBUILD"));
    };
    no_flags(node)?;
    let trigger = first.trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err(ParseErrorKind::OnbuildChain),
        "MAINTAINER" | "FROM" => return Err(ParseErrorKind::OnbuildTrigger(trigger)),
        _ => {}
    }
    // The line without its leading `ONBUILD` keyword.
    let line = node.original.trim_start();
    let mut expression = match line.get(..7) {
        Some(k) if k.eq_ignore_ascii_case("onbuild") => line[7..].trim_start().to_string(),
        _ => line.to_string(),
    };
    for doc in &node.heredocs {
        expression.push('\n');
        expression.push_str(&doc.content);
        expression.push_str(&doc.name);
    }
    Ok(Onbuild { expression })
}

/// Shell form joins the words back into one command; exec form keeps them.
fn command_line(node: &Node, args: &[String]) -> CommandLine {
    if node.json {
        CommandLine::Exec(args.to_vec())
    } else {
        CommandLine::Shell(args.join(" "))
    }
}

fn parse_run(node: &Node, args: &[String]) -> Result<Run> {
    let f = Flags::parse(
        &node.flags,
        &[
            ("mount", Kind::Strings),
            ("network", Kind::String),
            ("security", Kind::String),
            ("device", Kind::Strings),
        ],
    )?;
    let mounts = f.strings("mount");
    for m in &mounts {
        // Only the syntax can be checked before the build's variables are known.
        parse_mount(m, None)?;
    }
    let network = match f.string("network").as_deref() {
        None | Some("default") => NetworkMode::Default,
        Some("none") => NetworkMode::None,
        Some("host") => NetworkMode::Host,
        Some(other) => return Err(ParseErrorKind::NetworkMode(other.to_string())),
    };
    let security = match f.string("security").as_deref() {
        None | Some("sandbox") => Security::Sandbox,
        Some("insecure") => Security::Insecure,
        Some(other) => return Err(ParseErrorKind::Security(other.to_string())),
    };
    Ok(Run {
        command: command_line(node, args),
        heredocs: node.heredocs.clone(),
        mounts,
        network,
        security,
        devices: f.strings("device"),
    })
}

fn interval(flags: &Flags, name: &'static str) -> Result<Duration> {
    let Some(value) = flags.string(name).filter(|v| !v.is_empty()) else {
        return Ok(Duration::ZERO);
    };
    let nanos = go_duration(&value).ok_or(ParseErrorKind::Duration { flag: name, value })?;
    if nanos == 0 {
        return Ok(Duration::ZERO);
    }
    if nanos < 1_000_000 {
        return Err(ParseErrorKind::DurationTooShort(name));
    }
    Ok(Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    ))
}

fn parse_healthcheck(node: &Node, args: &[String]) -> Result<Healthcheck> {
    let Some((typ, rest)) = args.split_first() else {
        return Err(ParseErrorKind::AtLeastOneArgument("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(ParseErrorKind::HealthcheckNoneArguments);
        }
        return Ok(Healthcheck {
            test: vec![typ],
            interval: Duration::ZERO,
            timeout: Duration::ZERO,
            start_period: Duration::ZERO,
            start_interval: Duration::ZERO,
            retries: 0,
        });
    }
    let f = Flags::parse(
        &node.flags,
        &[
            ("interval", Kind::String),
            ("timeout", Kind::String),
            ("start-period", Kind::String),
            ("start-interval", Kind::String),
            ("retries", Kind::String),
        ],
    )?;
    if typ != "CMD" {
        return Err(ParseErrorKind::HealthcheckType(typ));
    }
    if rest.is_empty() {
        return Err(ParseErrorKind::HealthcheckNoCommand);
    }
    let test = match command_line(node, rest) {
        CommandLine::Exec(words) => std::iter::once(typ).chain(words).collect(),
        CommandLine::Shell(command) => vec!["CMD-SHELL".to_string(), command],
    };
    let retries = match f.string("retries").filter(|r| !r.is_empty()) {
        None => 0,
        Some(r) => {
            let n: i64 = r
                .parse()
                .ok()
                .filter(|n| i32::try_from(*n).is_ok())
                .ok_or(ParseErrorKind::Retries(r))?;
            u32::try_from(n).map_err(|_| ParseErrorKind::NegativeRetries(n))?
        }
    };
    Ok(Healthcheck {
        test,
        interval: interval(&f, "interval")?,
        timeout: interval(&f, "timeout")?,
        start_period: interval(&f, "start-period")?,
        start_interval: interval(&f, "start-interval")?,
        retries,
    })
}

fn parse_arg(args: &[String]) -> Result<Vec<ArgDef>> {
    if args.is_empty() {
        return Err(ParseErrorKind::AtLeastOneArgument("ARG"));
    }
    args.iter()
        .map(|a| match a.split_once('=') {
            Some(("", _)) => Err(ParseErrorKind::BlankName("ARG")),
            Some((k, v)) => Ok(ArgDef {
                name: k.to_string(),
                default: Some(v.to_string()),
            }),
            None => Ok(ArgDef {
                name: a.clone(),
                default: None,
            }),
        })
        .collect()
}
