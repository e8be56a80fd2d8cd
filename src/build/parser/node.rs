//! One logical line of a Dockerfile split into keyword, flags and arguments, the way
//! BuildKit's parser does it (`parser/line_parsers.go`, `parser/split_command.go`) before
//! arguments are given meaning, and its `Dump` format, which BuildKit's test data uses.

use super::error::ParseErrorKind;
use super::heredoc::Heredoc;

/// An instruction's syntax: what BuildKit's parser produces for one logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword as written (`run`, `RUN` and `Run` are the same instruction).
    pub cmd: String,
    /// `--name[=value]` words before the arguments, quotes and escapes removed.
    pub flags: Vec<String>,
    pub args: Vec<Arg>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// The logical line: continuation lines joined, comment lines dropped.
    pub original: String,
    /// First and last physical line (1-based), heredoc bodies included.
    pub start_line: usize,
    pub end_line: usize,
}

/// An argument: a word, or the instruction an ONBUILD wraps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Word(String),
    Sub(Box<Node>),
}

impl Node {
    /// The instruction keyword in lower case.
    pub fn keyword(&self) -> String {
        self.cmd.to_lowercase()
    }

    /// The words of the arguments, an ONBUILD's instruction flattened into keyword and
    /// arguments (as BuildKit's `nodeArgs`).
    pub fn words(&self) -> Vec<String> {
        let mut out = Vec::new();
        for arg in &self.args {
            match arg {
                Arg::Word(w) => out.push(w.clone()),
                Arg::Sub(node) => {
                    out.push(node.cmd.clone());
                    out.extend(node.words());
                }
            }
        }
        out
    }

    /// Whether heredocs are looked for after this line: RUN, COPY and ADD in shell form,
    /// also under ONBUILD.
    pub(super) fn can_contain_heredoc(&self) -> bool {
        let node = match (self.keyword().as_str(), self.args.first()) {
            ("onbuild", Some(Arg::Sub(child))) => child,
            _ => self,
        };
        matches!(node.keyword().as_str(), "add" | "copy" | "run") && !node.json
    }

    /// BuildKit's `Node.Dump` for one instruction: `run "echo hi"`, `copy ["--from=a"] "x" "y"`.
    pub fn dump(&self) -> String {
        let mut s = self.cmd.to_lowercase();
        if !self.flags.is_empty() {
            let quoted: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            s.push_str(&format!(" [{}]", quoted.join(" ")));
        }
        for arg in &self.args {
            s.push(' ');
            match arg {
                Arg::Word(w) => s.push_str(&go_quote(w)),
                Arg::Sub(node) => s.push_str(&format!("({})", node.dump())),
            }
        }
        s.trim().to_string()
    }
}

/// BuildKit's dump of a whole file: one parenthesised instruction per line.
pub fn dump_all(nodes: &[Node]) -> String {
    let mut s = String::new();
    for n in nodes {
        s.push_str(&format!("({})\n", n.dump()));
    }
    s.trim().to_string()
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Close to Go's `unicode.IsPrint`: no control, format or private-use characters, and no
/// space but U+0020.
fn go_printable(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format = matches!(u,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb);
    let private = matches!(u, 0xe000..=0xf8ff | 0xf0000..=0x10ffff);
    !(format || private)
}

/// Go's `unicode.IsSpace` for the characters BuildKit splits words at.
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// BuildKit's `reWhitespace`: `[\t\v\f\r ]+`.
fn is_re_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// `reWhitespace.Split(s, 2)`.
fn split_once_ws(s: &str) -> (&str, Option<&str>) {
    match s.find(is_re_whitespace) {
        None => (s, None),
        Some(i) => (&s[..i], Some(s[i..].trim_start_matches(is_re_whitespace))),
    }
}

/// Split a logical line into keyword, flags and the rest, and give the rest the shape its
/// instruction expects.
pub(super) fn node_from_line(line: &str, escape: char) -> Result<Node, ParseErrorKind> {
    let (cmd, rest) = split_once_ws(line.trim());
    let (rest, flags) = match rest {
        Some(rest) => extract_flags(rest, escape),
        None => (String::new(), Vec::new()),
    };
    let rest = rest.trim();
    let (args, json) = match cmd.to_lowercase().as_str() {
        "add" | "copy" | "volume" => maybe_json_to_list(rest)?,
        "arg" => (words_args(parse_words(rest, escape)), false),
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(rest)?,
        "env" => (name_val(rest, "ENV", escape)?, false),
        "label" => (name_val(rest, "LABEL", escape)?, false),
        "expose" | "from" => (whitespace_list(rest), false),
        "healthcheck" => health_config(rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (string_arg(rest), false),
        "onbuild" => (sub_command(rest, escape)?, false),
        // Unknown instructions are refused when the node is given meaning.
        _ => (Vec::new(), false),
    };
    Ok(Node {
        cmd: cmd.to_string(),
        flags,
        args,
        json,
        heredocs: Vec::new(),
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
    })
}

fn words_args(words: Vec<String>) -> Vec<Arg> {
    words.into_iter().map(Arg::Word).collect()
}

/// The leading `--flag` words, with quotes and escapes removed, and the rest of the line. A
/// `--` word ends the flags.
fn extract_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let (at, ch) = chars[i];
        if phase == Phase::Spaces {
            if is_space(ch) {
                i += 1;
                continue;
            }
            // Only a word starting with -- is a flag.
            if ch != '-' || chars.get(i + 1).map(|c| c.1) != Some('-') {
                return (line[at..].to_string(), words);
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word => {
                if is_space(ch) {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (line[at..].to_string(), words);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                } else if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                } else if ch == escape {
                    if let Some(&(_, next)) = chars.get(i + 1) {
                        word.push(next);
                        i += 1;
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                } else if ch == escape {
                    match chars.get(i + 1) {
                        Some(&(_, next)) => {
                            word.push(next);
                            i += 1;
                        }
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Spaces => {}
        }
        i += 1;
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    (String::new(), words)
}

/// BuildKit's `parseWords`: split at white space outside quotes, keeping quotes and escapes
/// (they are removed when the words are expanded).
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        let at_end = i + 1 == chars.len();
        if !in_word {
            if is_space(ch) {
                i += 1;
                continue;
            }
            in_word = true;
        }
        match quote {
            None => {
                if is_space(ch) {
                    in_word = false;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if at_end {
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                    word.push(chars[i]);
                    i += 1;
                    continue;
                }
                word.push(ch);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                if ch == escape && q != '\'' {
                    if at_end {
                        quote = None;
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                    word.push(chars[i]);
                    i += 1;
                    continue;
                }
                word.push(ch);
            }
        }
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV and LABEL: `KEY value…` (old form) or `KEY=value …`, as triples of key, value and
/// separator (`""` old form, `"="` new form).
fn name_val(rest: &str, key: &'static str, escape: char) -> Result<Vec<Arg>, ParseErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let (name, value) = split_once_ws(rest);
        let Some(value) = value else {
            return Err(ParseErrorKind::MissingValue(key));
        };
        return Ok(words_args(vec![
            name.to_string(),
            value.to_string(),
            String::new(),
        ]));
    }
    let mut out = Vec::new();
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(ParseErrorKind::MissingEquals(word));
        };
        out.extend(words_args(vec![
            k.to_string(),
            v.to_string(),
            "=".to_string(),
        ]));
    }
    Ok(out)
}

fn whitespace_list(rest: &str) -> Vec<Arg> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_re_whitespace)
        .filter(|s| !s.is_empty())
        .map(|s| Arg::Word(s.to_string()))
        .collect()
}

fn string_arg(rest: &str) -> Vec<Arg> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![Arg::Word(rest.to_string())]
    }
}

/// A JSON array of strings, `None` when `rest` is not a JSON array at all (then it is taken
/// as shell form), an error when it is an array of something else.
fn json_array(rest: &str) -> Result<Option<Vec<String>>, ParseErrorKind> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(ParseErrorKind::JsonNotStrings),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// RUN, CMD, ENTRYPOINT, SHELL: a JSON array, or the whole rest as one word.
fn maybe_json(rest: &str) -> Result<(Vec<Arg>, bool), ParseErrorKind> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    Ok(match json_array(rest)? {
        Some(words) => (words_args(words), true),
        None => (string_arg(rest), false),
    })
}

/// ADD, COPY, VOLUME: a JSON array, or words split at white space.
fn maybe_json_to_list(rest: &str) -> Result<(Vec<Arg>, bool), ParseErrorKind> {
    Ok(match json_array(rest)? {
        Some(words) => (words_args(words), true),
        None => (whitespace_list(rest), false),
    })
}

/// HEALTHCHECK: a type word (`CMD`, `NONE`), then a command as for CMD.
fn health_config(rest: &str) -> Result<(Vec<Arg>, bool), ParseErrorKind> {
    let sep = rest.find(is_space).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let typ = &rest[..sep];
    let (mut cmd, json) = maybe_json(rest[sep..].trim_start_matches(is_space))?;
    cmd.insert(0, Arg::Word(typ.to_string()));
    Ok((cmd, json))
}

/// ONBUILD: the wrapped instruction, parsed as a line of its own.
fn sub_command(rest: &str, escape: char) -> Result<Vec<Arg>, ParseErrorKind> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Arg::Sub(Box::new(node_from_line(rest, escape)?))])
}
