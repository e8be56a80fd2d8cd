//! One `.dockerignore` pattern: Go's `filepath.Match` syntax (`*`, `?`, `[…]`, `\`) plus
//! `**`, compiled as moby/patternmatcher compiles it: an exact path, a prefix (`dir/**`), a
//! suffix (`**/name`) or a regular expression.
//!
//! Two differences from patternmatcher, both where it passes pattern text into a regular
//! expression unchecked: characters between brackets and after `\` are taken literally here
//! (patternmatcher would read `\d` as "a digit", `[*]` as a broken expression), and a stray
//! `^` is a literal character rather than an anchor.

use regex::Regex;

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// `dir/**`: the text before the `**`.
    Prefix(String),
    /// `**/name`: the text after the `**`.
    Suffix(String),
    Regex(Regex),
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(super) struct Glob {
    /// The cleaned pattern, without its `!`.
    pub(super) text: String,
    kind: Kind,
}

/// The pattern is not valid `filepath.Match` syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BadPattern;

/// Parse a bracket expression after its `[`: ranges of possibly escaped characters, at least
/// one, then `]`. Returns the regex class and the characters consumed.
fn class(chars: &[char]) -> Result<(String, usize), BadPattern> {
    let mut i = 0;
    let mut out = String::from("[");
    if chars.first() == Some(&'^') {
        out.push('^');
        i += 1;
    }
    // One character of a range, as Go's getEsc reads it.
    let esc = |i: &mut usize| -> Result<char, BadPattern> {
        let c = match chars.get(*i) {
            None | Some('-' | ']') => return Err(BadPattern),
            Some('\\') => {
                *i += 1;
                *chars.get(*i).ok_or(BadPattern)?
            }
            Some(c) => *c,
        };
        *i += 1;
        if *i >= chars.len() {
            return Err(BadPattern);
        }
        Ok(c)
    };
    let mut ranges = 0;
    loop {
        if chars.get(i) == Some(&']') && ranges > 0 {
            i += 1;
            break;
        }
        let lo = esc(&mut i)?;
        out.push_str(&regex::escape(&lo.to_string()));
        if chars.get(i) == Some(&'-') {
            i += 1;
            let hi = esc(&mut i)?;
            out.push('-');
            out.push_str(&regex::escape(&hi.to_string()));
        }
        ranges += 1;
    }
    out.push(']');
    Ok((out, i))
}

impl Glob {
    /// Compile a cleaned pattern (without `!`).
    pub(super) fn new(text: &str) -> Result<Glob, BadPattern> {
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum Detected {
            Exact,
            Prefix,
            Suffix,
            Regex,
        }
        let chars: Vec<char> = text.chars().collect();
        let mut re = String::from("^");
        let mut detected = Detected::Exact;
        let mut i = 0;
        let mut first = true;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    // `**/` is `**`.
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i == chars.len() {
                        // A trailing `**` matches everything below, as in .gitignore.
                        if detected == Detected::Exact {
                            detected = Detected::Prefix;
                        } else {
                            re.push_str(".*");
                            detected = Detected::Regex;
                        }
                    } else {
                        // Any number of directories, none included.
                        re.push_str("(.*/)?");
                        detected = Detected::Regex;
                    }
                    if first {
                        detected = Detected::Suffix;
                    }
                }
                '*' => {
                    re.push_str("[^/]*");
                    detected = Detected::Regex;
                }
                '?' => {
                    re.push_str("[^/]");
                    detected = Detected::Regex;
                }
                '\\' => {
                    let next = chars.get(i).ok_or(BadPattern)?;
                    i += 1;
                    re.push_str(&regex::escape(&next.to_string()));
                    detected = Detected::Regex;
                }
                '[' => {
                    let (class, used) = class(&chars[i..])?;
                    i += used;
                    re.push_str(&class);
                    detected = Detected::Regex;
                }
                c => re.push_str(&regex::escape(&c.to_string())),
            }
            first = false;
        }
        let kind = match detected {
            Detected::Exact => Kind::Exact,
            Detected::Prefix => Kind::Prefix(text[..text.len() - 2].to_string()),
            Detected::Suffix => Kind::Suffix(text[2..].to_string()),
            Detected::Regex => {
                re.push('$');
                Kind::Regex(Regex::new(&re).map_err(|_| BadPattern)?)
            }
        };
        Ok(Glob {
            text: text.to_string(),
            kind,
        })
    }

    /// Whether a cleaned, slash-separated path matches.
    pub(super) fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|s| path == s)
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }
}

/// Go's `filepath.Clean` for slash-separated paths.
pub(super) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}
