//! Variable expansion and word splitting for Dockerfile instructions, with the semantics of
//! BuildKit's shell lexer (`frontend/dockerfile/shell/lex.go`): `$VAR`, `${VAR}`, the
//! `${VAR:-w}` `${VAR-w}` `${VAR:+w}` `${VAR+w}` `${VAR:?msg}` `${VAR?msg}` modifiers, the
//! `${VAR#p}` `${VAR##p}` `${VAR%p}` `${VAR%%p}` `${VAR/p/r}` `${VAR//p/r}` pattern
//! operations, the escape character (`\` or the Dockerfile's `# escape=`), single and double
//! quotes, and splitting into words after expansion.
//!
//! No crate implements this dialect (it is not POSIX sh: no command substitution, no `$'…'`,
//! escapes and quotes as Docker defines them), and BuildKit's own test tables must pass, so it
//! is written here, following lex.go's state machine step by step.
//!
//! One deliberate difference: since 2024 BuildKit shares one word buffer between a word and
//! the `${…}` modifier words nested in it, so `process_words("a${X:-b}")` loses the `a`. Each
//! level has its own buffer here (BuildKit's behaviour before that change).

mod pattern;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};

/// Where the lexer looks variables up. `None` is "unset", which differs from "set to empty"
/// for the `-`, `+` and `?` modifiers without a colon.
pub trait Env {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

/// A list of `(name, value)` pairs; the last pair of a name wins, as in a process environment.
impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// An environment with nothing set.
pub struct NoEnv;

impl Env for NoEnv {
    fn get(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// What went wrong while expanding one word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {kind}")]
pub struct ShellError {
    /// The word as written.
    pub word: String,
    pub kind: ShellErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellErrorKind {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(char),
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${NAME?message}` or `${NAME:?message}` with NAME unset (or empty).
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        pattern: String,
        reason: pattern::PatternError,
    },
}

/// The result of expanding one word, with the variables it looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The word expanded, quotes removed, spaces kept.
    pub result: String,
    /// The word expanded and split at unquoted white space.
    pub words: Vec<String>,
    /// Variables looked up and found.
    pub matched: BTreeSet<String>,
    /// Variables looked up and not found.
    pub unmatched: BTreeSet<String>,
}

/// The lexer and its options (the fields of BuildKit's `shell.Lex`).
#[derive(Debug, Clone)]
pub struct Lexer {
    escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset_env: bool,
}

impl Lexer {
    /// A lexer using `escape` (`\` or `` ` ``) as its escape character.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expand `word` into one string (BuildKit's `ProcessWord`).
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        self.process(word, env).map(|e| e.result)
    }

    /// Expand `word` and split the result into words (BuildKit's `ProcessWords`).
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        self.process(word, env).map(|e| e.words)
    }

    /// Expand `word`, returning the string, the words and the variables looked up.
    pub fn process(&self, word: &str, env: &dyn Env) -> Result<Expansion, ShellError> {
        let mut sw = ShellWord {
            lex: self,
            env,
            chars: word.chars().collect(),
            pos: 0,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Expansion {
                result,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(kind) => Err(ShellError {
                word: word.to_string(),
                kind,
            }),
        }
    }
}

/// Accumulates words split at unquoted white space.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct ShellWord<'a> {
    lex: &'a Lexer,
    env: &'a dyn Env,
    chars: Vec<char>,
    pos: usize,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

type Step<T> = Result<T, ShellErrorKind>;

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    /// Process characters until `stop` (consumed) or the end of input.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Step<(String, Vec<String>)> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let out = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Step<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes = !self.lex.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            let special = match ch {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' if quotes => Some(self.process_single_quote()?),
                '"' if quotes => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            self.pos += 1;
            let mut ch = ch;
            if ch == self.lex.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                // The escape character escapes the next one; at the end it vanishes.
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        match stop {
            Some(c) => Err(ShellErrorKind::Unterminated(c)),
            None => Ok((result, words.finish())),
        }
    }

    /// Everything between single quotes is literal; a single quote cannot be escaped.
    fn process_single_quote(&mut self) -> Step<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(ShellErrorKind::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    /// Between double quotes `$` expands, and the escape character escapes only `"`, `$`
    /// and itself; before anything else it stays.
    fn process_double_quote(&mut self) -> Step<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(ShellErrorKind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.pos += 1;
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // An escape at the very end is dropped; the missing quote is
                            // reported on the next turn.
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                self.pos += 1;
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Step<String> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // '{'
        match self.peek() {
            None => return Err(ShellErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err(ShellErrorKind::MissingBrace);
        };
        let mut modifier = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => {
                return Ok(match self.get_env(&name) {
                    Some(v) => v,
                    None if self.lex.skip_unset_env => format!("${{{name}}}"),
                    None => String::new(),
                });
            }
            '/' => return self.process_replace(&name),
            ':' => {
                null_is_unset = true;
                // Whatever follows the colon is taken as the modifier, valid or not; an
                // invalid one is refused once its word has been read.
                match self.next() {
                    Some(c) => {
                        ch = c;
                        modifier.push(c);
                    }
                    None => return Err(ShellErrorKind::MissingBrace),
                }
            }
            '+' | '-' | '?' | '#' | '%' => {}
            _ => return Err(ShellErrorKind::UnsupportedModifier(modifier)),
        }
        let raw_escapes = ch == '#' || ch == '%';
        if null_is_unset && raw_escapes {
            return Err(ShellErrorKind::UnsupportedModifier(modifier));
        }
        let word = match self.process_stop_on(Some('}'), raw_escapes) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => return Err(ShellErrorKind::MissingBrace),
            Err(e) => return Err(e),
        };
        let value = self.get_env(&name);
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let unset = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match ch {
            '-' => Ok(if unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset { String::new() } else { word }),
            '?' => match value {
                Some(v) if !(null_is_unset && v.is_empty()) => Ok(v),
                v => {
                    let message = if !word.is_empty() {
                        word
                    } else if v.is_none() {
                        "is not allowed to be unset".to_string()
                    } else {
                        "is not allowed to be empty".to_string()
                    };
                    Err(ShellErrorKind::Required { name, message })
                }
            },
            '%' | '#' => {
                let value = value.unwrap_or_default();
                // `%`/`#` remove the shortest match, `%%`/`##` the longest.
                let (greedy, pat) = match word.strip_prefix(ch) {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, word),
                };
                let trimmed = if ch == '%' {
                    pattern::trim_suffix(&pat, &value, greedy)
                } else {
                    pattern::trim_prefix(&pat, &value, greedy)
                };
                trimmed.map_err(|reason| ShellErrorKind::InvalidPattern {
                    pattern: pat,
                    reason,
                })
            }
            _ => Err(ShellErrorKind::UnsupportedModifier(modifier)),
        }
    }

    /// `${NAME/pattern/replacement}` and `${NAME//pattern/replacement}`.
    fn process_replace(&mut self, name: &str) -> Step<String> {
        let replace_all = self.peek() == Some('/');
        if replace_all {
            self.pos += 1;
        }
        let pat = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => return Err(ShellErrorKind::MissingSlash),
            Err(e) => return Err(e),
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(_) if self.peek().is_none() => return Err(ShellErrorKind::MissingBrace),
            Err(e) => return Err(e),
        };
        let Some(value) = self.get_env(name) else {
            if self.lex.skip_unset_env {
                return Ok(format!("${{{name}/{pat}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        pattern::replace(&pat, &replacement, &value, replace_all).map_err(|reason| {
            ShellErrorKind::InvalidPattern {
                pattern: pat.clone(),
                reason,
            }
        })
    }

    /// A variable name: letters, digits and `_`; or digits only (a positional parameter);
    /// or one special parameter character.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek().filter(|c| is_digit(*c)) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.pos += 1;
                name.push(ch);
                return name;
            }
            if !(ch.is_alphabetic() || is_digit(ch) || ch == '_') {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }

    /// `<<` and the blanks after it stay together, so a heredoc word is never split there.
    fn process_possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.pos += 1;
        let mut out = "<<".to_string();
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.pos += 1;
        }
        out
    }
}

/// Go's `unicode.IsDigit`: decimal digits of any script.
fn is_digit(ch: char) -> bool {
    ch.is_ascii_digit() || (!ch.is_ascii() && ch.is_numeric())
}

/// The POSIX special parameters; never set in a Dockerfile, so they expand to nothing.
fn is_special_param(ch: char) -> bool {
    matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}
