//! A Dockerfile as logical lines, as BuildKit's `parser.Parse` reads it: parser directives
//! at the top, comments, line continuations with the escape character (comment and empty
//! lines inside a continuation skipped), and heredoc bodies after their instruction.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::error::ParseErrorKind;
use super::heredoc::heredocs_from_line;
use super::node::{Node, node_from_line};

/// The file as BuildKit's parser sees it: one node per instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxTree {
    pub nodes: Vec<Node>,
    /// `\` unless `# escape=` chose `` ` ``.
    pub escape: char,
    /// `# syntax=` value, if given.
    pub syntax: Option<String>,
    /// `# check=` value, if given.
    pub check: Option<String>,
    pub warnings: Vec<Warning>,
}

/// Something Docker accepts but warns about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// Lines longer than this (with their newline) are refused, as by Go's line scanner.
const MAX_LINE: usize = 64 * 1024;

// Go's `\s`: ASCII white space without \v.
static DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$")
        .expect("directive regex compiles")
});

/// Parser directives: `# name=value` lines before anything else.
struct Directives {
    done: bool,
    seen: HashSet<String>,
    escape: char,
    syntax: Option<String>,
    check: Option<String>,
}

impl Directives {
    /// Look at a line (newline and, at top level, leading blanks removed).
    fn line(&mut self, line: &str) -> Result<(), ParseErrorKind> {
        if self.done {
            return Ok(());
        }
        let Some(body) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(());
        };
        let Some(caps) = DIRECTIVE.captures(body.trim_start()) else {
            self.done = true;
            return Ok(());
        };
        let name = caps[1].to_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if !self.seen.insert(name.clone()) {
            return Err(ParseErrorKind::DuplicateDirective(name));
        }
        let value = caps[2].to_string();
        match name.as_str() {
            "escape" => {
                self.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => return Err(ParseErrorKind::InvalidEscapeToken(value)),
                }
            }
            "syntax" => self.syntax = Some(value),
            _ => self.check = Some(value),
        }
        Ok(())
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// A physical line ready to be joined: newline removed, leading blanks removed at top level,
/// parser directives noted, comment lines emptied.
fn process_line<'a>(
    d: &mut Directives,
    raw: &'a str,
    strip_left: bool,
) -> Result<&'a str, ParseErrorKind> {
    let mut token = trim_newline(raw);
    if strip_left {
        token = token.trim_start();
    }
    d.line(token)?;
    Ok(if is_comment(token) { "" } else { token })
}

/// Remove a trailing escape character (and the blanks after it) that continues the line on
/// the next one. An escape preceded by another escape is not a continuation.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some("") => ("", false),
        Some(before) if !before.ends_with(escape) => (before, false),
        _ => (line, true),
    }
}

/// Read the file into nodes. Errors carry the line they belong to.
pub fn parse_syntax(text: &str) -> Result<SyntaxTree, (usize, ParseErrorKind)> {
    parse_lines(text, '\\')
}

/// [`parse_syntax`] starting with `escape` as the escape character.
pub(super) fn parse_lines(text: &str, escape: char) -> Result<SyntaxTree, (usize, ParseErrorKind)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if let Some(i) = lines.iter().position(|l| l.len() > MAX_LINE) {
        return Err((i + 1, ParseErrorKind::LineTooLong));
    }
    let mut d = Directives {
        done: false,
        seen: HashSet::new(),
        escape,
        syntax: None,
        check: None,
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut next = 0; // index of the next physical line
    while next < lines.len() {
        let line_no = next + 1;
        let first = process_line(&mut d, lines[next], true).map_err(|k| (line_no, k))?;
        next += 1;
        let start = next;
        let (piece, mut end) = trim_continuation(first, d.escape);
        if end && piece.is_empty() {
            continue;
        }
        let mut logical = piece.to_string();
        let mut empty_continuation = false;
        while !end && next < lines.len() {
            let raw = lines[next];
            let line = process_line(&mut d, raw, false).map_err(|k| (next + 1, k))?;
            next += 1;
            if is_comment(raw) {
                continue;
            }
            if trim_newline(line).trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (piece, e) = trim_continuation(line, d.escape);
            end = e;
            logical.push_str(piece);
        }
        if empty_continuation {
            warnings.push(Warning {
                line: next,
                message: format!("Empty continuation line found in: {logical}"),
            });
        }
        let mut node = node_from_line(&logical, d.escape).map_err(|k| (start, k))?;
        if node.can_contain_heredoc() && logical.contains("<<") {
            for mut doc in heredocs_from_line(&logical).map_err(|k| (start, k))? {
                let mut terminated = false;
                while next < lines.len() {
                    let raw = lines[next];
                    next += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    return Err((start, ParseErrorKind::UnterminatedHeredoc(doc.name)));
                }
                node.heredocs.push(doc);
            }
        }
        node.start_line = start;
        node.end_line = next;
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err((lines.len().max(1), ParseErrorKind::NoInstructions));
    }
    Ok(SyntaxTree {
        nodes,
        escape: d.escape,
        syntax: d.syntax,
        check: d.check,
        warnings,
    })
}
