//! Heredocs (`RUN <<EOF`, `COPY <<-'EOF' /dst`) as BuildKit recognises them: a word
//! `[fd]<<[-]NAME`, where a quoted NAME (wholly or in part) turns expansion of the body off.

use std::sync::LazyLock;

use regex::Regex;

use super::error::ParseErrorKind;
use crate::build::shell::{Lexer, NoEnv};

/// One heredoc after an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator, quotes removed.
    pub name: String,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when none.
    pub fd: u32,
    /// Variables in the body are expanded (the name was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are removed from the body's lines and the terminator's.
    pub chomp: bool,
    /// The body, every line with its newline.
    pub content: String,
}

static HEREDOC_WORD: LazyLock<Regex> = LazyLock::new(|| {
    // Go's `\d` and `\s` are ASCII; its `\s` has no \v.
    Regex::new(r"^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)$").expect("heredoc regex compiles")
});

/// The heredoc `word` introduces, if it is one (BuildKit's `ParseHeredoc`).
pub(super) fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ParseErrorKind> {
    let Some(caps) = HEREDOC_WORD.captures(word) else {
        return Ok(None);
    };
    let fd = caps[1].parse::<u32>().unwrap_or(0);
    let chomp = &caps[2] == "-";
    let rest = &caps[3];
    if rest.is_empty() {
        return Ok(None);
    }
    // Lex the name with and without quotes: if they differ in quote count, part of it was
    // quoted, and the body is not expanded.
    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let words = lex
        .process_words(rest, &NoEnv)
        .map_err(ParseErrorKind::HeredocWord)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex
        .process_words(rest, &NoEnv)
        .map_err(ParseErrorKind::HeredocWord)?;
    if raw.len() != 1 {
        return Err(ParseErrorKind::InconsistentHeredoc(rest.to_string()));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Heredoc {
        expand: quotes(&words[0]) == quotes(&raw[0]),
        name: words[0].clone(),
        fd,
        chomp,
        content: String::new(),
    }))
}

/// The heredocs a logical line introduces, in order (BuildKit's `heredocsFromLine`).
pub(super) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ParseErrorKind> {
    let mut lex = Lexer::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    // A line the lexer cannot split has no heredocs, as in BuildKit.
    let words = lex.process_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// The body of a `<<-` heredoc without the tabs that start its lines.
pub fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}
