//! The Dockerfile parser: text in, a typed [`Dockerfile`] out (global ARGs, then stages of
//! instructions with their line numbers and original text).
//!
//! It works in BuildKit's two steps. [`syntax::parse_syntax`] reads lines as BuildKit's
//! `parser` package does: parser directives (`# syntax=`, `# escape=`, `# check=`),
//! comments, continuations, JSON or shell form, flags, heredocs; [`node::Node`] is its
//! result, and [`node::dump_all`] renders it in BuildKit's test format. The instructions step
//! then checks each node's arguments and flags and types them, as BuildKit's `instructions`
//! package does, keeping Docker's error wording.
//!
//! Written here rather than taken from a crate: the crates that parse Dockerfiles
//! (`dockerfile-parser`, `dockerfile-parser-rs`, `parse-dockerfile`) each build their own
//! grammar, and none reproduces BuildKit's node shapes (ENV's old and new forms, JSON that
//! falls back to shell form, `parseWords` quoting, the directive and heredoc rules) that
//! BuildKit's parser test data checks; see `tests.rs`, which runs that data.

pub mod ast;
pub mod error;
mod flags;
pub mod heredoc;
mod instructions;
pub mod mount;
pub mod node;
pub mod syntax;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_instructions;
#[cfg(test)]
mod tests_run;

pub use ast::*;
pub use error::ParseError;

/// Parse a Dockerfile; errors name it `Dockerfile`.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    parse_named("Dockerfile", text)
}

/// Parse a Dockerfile; errors name it `file` (`-f` of `burrow build`).
pub fn parse_named(file: &str, text: &str) -> Result<Dockerfile, ParseError> {
    let err = |(line, kind)| ParseError {
        file: file.to_string(),
        line,
        kind,
    };
    let tree = syntax::parse_syntax(text).map_err(err)?;
    instructions::build(tree).map_err(err)
}

/// Parse an ONBUILD trigger taken from a base image's configuration (its `expression`), as
/// the build of an image on top of it does; `escape` is that build's escape character.
pub fn parse_trigger(expression: &str, escape: char) -> Result<Instruction, ParseError> {
    let err = |(line, kind)| ParseError {
        file: "ONBUILD".to_string(),
        line,
        kind,
    };
    let tree = syntax::parse_lines(expression, escape).map_err(err)?;
    instructions::trigger(tree).map_err(err)
}
