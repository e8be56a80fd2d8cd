//! The typed Dockerfile: global ARGs, then stages of instructions. Values are as written;
//! variables are expanded later, instruction by instruction, as the build reaches them (see
//! `build::expand`).

use std::time::Duration;

pub use super::heredoc::Heredoc;
pub use super::syntax::Warning;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\`, or `` ` `` from `# escape=`).
    pub escape: char,
    /// `# syntax=` (BuildKit's frontend image), recorded only.
    pub syntax: Option<String>,
    /// `# check=` (BuildKit's lint settings), recorded only.
    pub check: Option<String>,
    /// ARG instructions before the first FROM: usable in FROM lines, and by stages that
    /// declare the same ARG without a value.
    pub meta_args: Vec<ArgInstruction>,
    pub stages: Vec<Stage>,
    pub warnings: Vec<Warning>,
}

/// An ARG before the first FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgInstruction {
    pub line: usize,
    pub original: String,
    pub args: Vec<ArgDef>,
}

/// A FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lower-cased (stage names are case-insensitive).
    pub name: Option<String>,
    /// The base image or stage, as written (global ARGs not yet expanded).
    pub base: String,
    /// `--platform=`, as written.
    pub platform: Option<String>,
    pub line: usize,
    /// The FROM line as written.
    pub original: String,
    pub instructions: Vec<Instruction>,
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// First and last line (1-based), heredoc bodies included.
    pub line: usize,
    pub end_line: usize,
    /// The logical line as written, continuations joined (what Docker records in an image's
    /// history as `created_by`).
    pub original: String,
    pub kind: InstructionKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Label(Vec<KeyValue>),
    Maintainer(String),
    /// Ports as written (`80/tcp`, `$PORT`); split into words when expanded.
    Expose(Vec<String>),
    Env(Vec<KeyValue>),
    Add(Add),
    Copy(Copy),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDef>),
    Onbuild(Onbuild),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
}

impl InstructionKind {
    /// The instruction keyword in upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::User(_) => "USER",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Onbuild(_) => "ONBUILD",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::Shell(_) => "SHELL",
        }
    }
}

/// A key and value of ENV or LABEL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    /// As written: quotes and escapes are removed by expansion.
    pub value: String,
    /// Written `KEY value` rather than `KEY=value` (Docker warns about the old form).
    pub legacy: bool,
}

/// `ARG name` or `ARG name=default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    pub name: String,
    /// As written: quotes and escapes are removed by expansion.
    pub default: Option<String>,
}

/// The command of RUN, CMD or ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// Run by the stage's shell (`SHELL`, else `/bin/sh -c`).
    Shell(String),
    /// A JSON array, run as is.
    Exec(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub command: CommandLine,
    /// Heredocs after the line (`RUN <<EOF`), bodies as written (`<<-` tabs not removed).
    pub heredocs: Vec<Heredoc>,
    /// `--mount` values as written; parsed with `mount::parse_mount` once expanded.
    pub mounts: Vec<String>,
    pub network: NetworkMode,
    pub security: Security,
    /// `--device` values as written.
    pub devices: Vec<String>,
}

/// A source of COPY or ADD given inline as a heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The heredoc name, which is also the file name.
    pub name: String,
    /// The body (tabs already removed for `<<-`).
    pub data: String,
    /// Variables in the body are expanded (the heredoc name was not quoted).
    pub expand: bool,
}

/// Sources and destination of COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub paths: Vec<String>,
    pub inline: Vec<InlineFile>,
    pub dest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub sources: Sources,
    /// `--from=`: a stage name or index, or an image.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub sources: Sources,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub keep_git_dir: Option<bool>,
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
    pub excludes: Vec<String>,
}

/// ONBUILD: the trigger, kept as text and parsed when a build uses this image as its base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    /// The wrapped instruction as written, heredoc bodies appended (as Docker stores it).
    pub expression: String,
}

/// HEALTHCHECK, in the image configuration's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", arg…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Zero means "inherit".
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}
