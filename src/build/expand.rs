//! Variable expansion of instructions, as the build reaches them.
//!
//! Docker expands variables in ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME,
//! WORKDIR, in ARG defaults and in RUN `--mount` values ([`expands_variables`]); ONBUILD
//! triggers are expanded when they run, in the build that uses the image. RUN, CMD,
//! ENTRYPOINT, SHELL and HEALTHCHECK commands are left to the shell.
//!
//! A stage's variables live in a [`BuildEnv`]: ENV values (starting with the base image's)
//! and ARG values. A name set by ENV wins over an ARG of the same name, whatever their
//! order, as Docker documents ("environment variables defined using the ENV instruction
//! always override an ARG instruction of the same name"). FROM lines see only the global
//! ARGs ([`resolve_meta_args`]).

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::build::parser::mount::{Mount, MountError, parse_mount};
use crate::build::parser::{
    Add, ArgDef, ArgInstruction, Copy, InlineFile, InstructionKind, KeyValue, Run, Sources, Stage,
};
use crate::build::shell::{Env, Lexer, NoEnv, ShellError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error("base name ({0}) should not be blank (give the ARG it uses a value, or --build-arg)")]
    BlankBase(String),
    #[error("empty platform value from expression {0}")]
    EmptyPlatform(String),
    #[error(
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    CopyFromVariable,
    #[error(transparent)]
    Mount(#[from] MountError),
}

/// The variables of one stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildEnv {
    env: Vec<(String, String)>,
    args: Vec<(String, String)>,
}

fn set(list: &mut Vec<(String, String)>, key: &str, value: &str) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => list.push((key.to_string(), value.to_string())),
    }
}

impl BuildEnv {
    /// A stage on top of an image whose configuration has `env` (`KEY=value` strings).
    pub fn from_image_env(env: &[String]) -> Self {
        let mut out = BuildEnv::default();
        for kv in env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            set(&mut out.env, k, v);
        }
        out
    }

    /// ENV: also what the image's configuration gets.
    pub fn set_env(&mut self, key: &str, value: &str) {
        set(&mut self.env, key, value);
    }

    /// An ARG's value for the rest of the stage (not recorded in the image).
    pub fn set_arg(&mut self, key: &str, value: &str) {
        set(&mut self.args, key, value);
    }

    /// The ENV values, in the order they were first set (the image configuration's `Env`).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// What RUN commands see: ENV, and the ARGs no ENV overrides.
    pub fn run_env(&self) -> Vec<String> {
        let mut out: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for (k, v) in &self.args {
            if !self.env.iter().any(|(e, _)| e == k) {
                out.push(format!("{k}={v}"));
            }
        }
        out
    }

    /// ARG in a stage: a `--build-arg` value wins, then the default (expanded with what the
    /// stage has so far); an ARG with neither takes the global ARG of that name, if any.
    pub fn declare_args(
        &mut self,
        lex: &Lexer,
        defs: &[ArgDef],
        build_args: &HashMap<String, String>,
        globals: &[(String, String)],
    ) -> Result<(), ExpandError> {
        for def in defs {
            let value = if let Some(v) = build_args.get(&def.name) {
                Some(v.clone())
            } else if let Some(default) = &def.default {
                Some(lex.process_word(default, self)?)
            } else {
                Env::get(globals, &def.name).map(str::to_string)
            };
            if let Some(v) = value {
                self.set_arg(&def.name, &v);
            }
        }
        Ok(())
    }
}

impl Env for BuildEnv {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(&self.env, name).or_else(|| Env::get(&self.args, name))
    }
}

/// The global ARGs (those before the first FROM) with their values: `--build-arg` values
/// win, defaults are expanded with the ARGs before them; an ARG with neither stays unset.
/// `predefined` are set first (BuildKit's `TARGETPLATFORM` and friends).
pub fn resolve_meta_args(
    lex: &Lexer,
    meta: &[ArgInstruction],
    build_args: &HashMap<String, String>,
    predefined: &[(String, String)],
) -> Result<Vec<(String, String)>, ExpandError> {
    let mut args = predefined.to_vec();
    for instruction in meta {
        for def in &instruction.args {
            let value = match (build_args.get(&def.name), &def.default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => Some(lex.process_word(default, &args)?),
                (None, None) => None,
            };
            if let Some(v) = value {
                set(&mut args, &def.name, &v);
            }
        }
    }
    Ok(args)
}

/// A stage's base image (or stage) and platform with the global ARGs expanded.
pub fn expand_stage(
    lex: &Lexer,
    stage: &Stage,
    globals: &[(String, String)],
) -> Result<(String, Option<String>), ExpandError> {
    let globals = globals.to_vec();
    let base = lex.process_word(&stage.base, &globals)?;
    if base.is_empty() {
        return Err(ExpandError::BlankBase(stage.base.clone()));
    }
    let platform = match &stage.platform {
        None => None,
        Some(p) => {
            let v = lex.process_word(p, &globals)?;
            if v.is_empty() {
                return Err(ExpandError::EmptyPlatform(p.clone()));
            }
            Some(v)
        }
    };
    Ok((base, platform))
}

/// Whether Docker expands variables in this instruction (ARG's default is expanded by
/// [`BuildEnv::declare_args`]; RUN's only in its `--mount` values, by [`expand_mounts`]).
pub fn expands_variables(kind: &InstructionKind) -> bool {
    use InstructionKind as K;
    match kind {
        K::Add(_)
        | K::Copy(_)
        | K::Env(_)
        | K::Expose(_)
        | K::Label(_)
        | K::StopSignal(_)
        | K::User(_)
        | K::Volume(_)
        | K::Workdir(_)
        | K::Arg(_) => true,
        K::Run(r) => !r.mounts.is_empty(),
        K::Cmd(_)
        | K::Entrypoint(_)
        | K::Maintainer(_)
        | K::Onbuild(_)
        | K::Healthcheck(_)
        | K::Shell(_) => false,
    }
}

/// The instruction with its variables expanded from `env`; instructions Docker does not
/// expand are returned unchanged (ARG too: see [`BuildEnv::declare_args`]).
pub fn expand_instruction(
    lex: &Lexer,
    kind: &InstructionKind,
    env: &dyn Env,
) -> Result<InstructionKind, ExpandError> {
    use InstructionKind as K;
    let word = |w: &str| lex.process_word(w, env);
    let opt = |w: &Option<String>| w.as_deref().map(word).transpose();
    let all = |ws: &[String]| ws.iter().map(|w| word(w)).collect::<Result<Vec<_>, _>>();
    let kvs = |kvs: &[KeyValue]| {
        kvs.iter()
            .map(|kv| {
                Ok(KeyValue {
                    key: word(&kv.key)?,
                    value: word(&kv.value)?,
                    legacy: kv.legacy,
                })
            })
            .collect::<Result<Vec<_>, ShellError>>()
    };
    Ok(match kind {
        K::Env(v) => K::Env(kvs(v)?),
        K::Label(v) => K::Label(kvs(v)?),
        K::Workdir(p) => K::Workdir(word(p)?),
        K::User(u) => K::User(word(u)?),
        K::StopSignal(s) => K::StopSignal(word(s)?),
        K::Volume(v) => K::Volume(all(v)?),
        K::Expose(ports) => {
            let mut out = Vec::new();
            for p in ports {
                out.extend(lex.process_words(p, env)?);
            }
            K::Expose(out)
        }
        K::Copy(c) => {
            if let Some(from) = &c.from {
                if lex.process_word(from, &NoEnv)? != *from {
                    return Err(ExpandError::CopyFromVariable);
                }
            }
            K::Copy(Copy {
                sources: sources(lex, &c.sources, env)?,
                chown: opt(&c.chown)?,
                chmod: opt(&c.chmod)?,
                ..c.clone()
            })
        }
        K::Add(a) => K::Add(Add {
            sources: sources(lex, &a.sources, env)?,
            chown: opt(&a.chown)?,
            chmod: opt(&a.chmod)?,
            checksum: opt(&a.checksum)?,
            ..a.clone()
        }),
        other => other.clone(),
    })
}

/// Source paths and destination expanded; heredoc bodies too unless their name was quoted,
/// with quotes left alone (a body is a file, not a word).
fn sources(lex: &Lexer, s: &Sources, env: &dyn Env) -> Result<Sources, ExpandError> {
    let mut raw = Lexer::new('\\');
    raw.skip_process_quotes = true;
    let inline = s
        .inline
        .iter()
        .map(|f| {
            Ok(InlineFile {
                data: if f.expand {
                    raw.process_word(&f.data, env)?
                } else {
                    f.data.clone()
                },
                ..f.clone()
            })
        })
        .collect::<Result<Vec<_>, ShellError>>()?;
    Ok(Sources {
        paths: s
            .paths
            .iter()
            .map(|p| lex.process_word(p, env))
            .collect::<Result<_, _>>()?,
        inline,
        dest: lex.process_word(&s.dest, env)?,
    })
}

/// RUN's `--mount` values expanded and parsed.
pub fn expand_mounts(lex: &Lexer, run: &Run, env: &dyn Env) -> Result<Vec<Mount>, ExpandError> {
    let mut expand = |w: &str| lex.process_word(w, env);
    run.mounts
        .iter()
        .map(|m| Ok(parse_mount(m, Some(&mut expand))?))
        .collect()
}
