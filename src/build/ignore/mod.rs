//! `.dockerignore`: which paths of the build context are left out, with Docker's semantics
//! (moby/patternmatcher and its `ignorefile` reader, and BuildKit's context walker):
//!
//! - one pattern a line; a line starting with `#` is a comment; blank lines are skipped;
//! - patterns are trimmed and cleaned (`./a//b/` is `a/b`), a leading `/` is dropped;
//! - Go's `filepath.Match` syntax (`*` `?` `[a-z]` `\`) plus `**` for any number of
//!   directories; a pattern matching a directory matches everything below it;
//! - `!pattern` re-includes; the last pattern that matches a path decides;
//! - a directory that is excluded must still be walked when an exception could re-include
//!   something below it ([`Matcher::can_skip_dir`]).
//!
//! globset and the `ignore` crate implement gitignore's rules, which differ (a pattern
//! without a slash matches at any depth there, at the top only here; `!` cannot re-include
//! below an excluded directory there), so the matching is written here, after
//! patternmatcher, and checked against its test tables (tests/build/ignore/).

mod glob;
#[cfg(test)]
mod tests;

use glob::{Glob, clean};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error(
        ".dockerignore:{line}: illegal exclusion pattern: \"!\" (write the path to re-include after the !)"
    )]
    LoneExclamation { line: usize },
    #[error(
        ".dockerignore:{line}: syntax error in pattern {pattern:?} (check its [ ] brackets and \\ escapes)"
    )]
    BadPattern { line: usize, pattern: String },
}

/// What the context walker does with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it (and the directories above it).
    Include,
    /// Leave it out; for a directory, still walk what is below it.
    Exclude,
    /// A directory left out with everything below it: do not walk it.
    SkipDir,
}

#[derive(Debug, Clone)]
struct Pattern {
    glob: Glob,
    exclusion: bool,
}

/// The patterns of a `.dockerignore`, ready to be asked about paths.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    /// Some exception could match below an excluded directory only where a prefix check
    /// cannot tell (it has wildcards), so excluded directories are always walked.
    wild_exceptions: bool,
}

/// The patterns of a `.dockerignore` file's text, as moby's `ignorefile.ReadAll` returns
/// them (`!` kept in front), with their line numbers.
pub fn read_patterns(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // Comments are recognised before trimming: " # x" is a pattern.
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        if invert {
            p.insert(0, '!');
        }
        out.push((i + 1, p));
    }
    out
}

impl Matcher {
    /// Parse a `.dockerignore` file's text.
    pub fn parse(text: &str) -> Result<Matcher, IgnoreError> {
        Matcher::new(read_patterns(text))
    }

    /// Compile patterns (`!` in front for exceptions) with the line each came from.
    pub fn new(patterns: Vec<(usize, String)>) -> Result<Matcher, IgnoreError> {
        let mut out = Matcher::default();
        for (line, p) in patterns {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let p = clean(p);
            let (exclusion, text) = match p.strip_prefix('!') {
                Some("") => return Err(IgnoreError::LoneExclamation { line }),
                Some(rest) => (true, rest),
                None => (false, p.as_str()),
            };
            let glob = Glob::new(text).map_err(|_| IgnoreError::BadPattern {
                line,
                pattern: p.clone(),
            })?;
            if exclusion && without_trailing_glob(text).contains(['*', '[', ']', '?', '^', '\\']) {
                out.wild_exceptions = true;
            }
            out.patterns.push(Pattern { glob, exclusion });
        }
        Ok(out)
    }

    /// Whether any pattern re-includes (`!`).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether a path of the context (relative, `/`-separated) is left out: the last
    /// pattern that matches it or one of its parent directories decides. The context root
    /// itself is never left out.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path.trim_start_matches('/'));
        if path == "." {
            return false;
        }
        self.matches_or_parent_matches(&path)
    }

    /// patternmatcher's `MatchesOrParentMatches`, on a path as given.
    fn matches_or_parent_matches(&self, path: &str) -> bool {
        // The parent directories, shortest first: `a`, `a/b` for `a/b/c` (the path is
        // clean, so they are its prefixes up to each slash).
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        let mut matched = false;
        for p in &self.patterns {
            // An inclusion cannot change an excluded path, nor an exception an included one.
            if p.exclusion != matched {
                continue;
            }
            if p.glob.matches(path) || parents.iter().any(|d| p.glob.matches(d)) {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether the walker may skip an excluded directory without looking inside: no
    /// exception can re-include anything below it (BuildKit's rule: an exception that is a
    /// plain path below the directory keeps it walked, one with wildcards keeps every
    /// excluded directory walked).
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        if !self.is_excluded(dir) {
            return false;
        }
        if !self.has_exceptions() {
            return true;
        }
        if self.wild_exceptions {
            return false;
        }
        let dir_slash = format!("{}/", clean(dir.trim_start_matches('/')));
        !self
            .patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", without_trailing_glob(&p.glob.text)).starts_with(&dir_slash))
    }

    /// What the walker does with `path`.
    pub fn check(&self, path: &str, is_dir: bool) -> Verdict {
        if !self.is_excluded(path) {
            Verdict::Include
        } else if is_dir && self.can_skip_dir(path) {
            Verdict::SkipDir
        } else {
            Verdict::Exclude
        }
    }
}

/// A pattern without a trailing `/**` or `/*` (BuildKit's `patternWithoutTrailingGlob`).
fn without_trailing_glob(p: &str) -> &str {
    let p = p.strip_suffix("/**").unwrap_or(p);
    p.strip_suffix("/*").unwrap_or(p)
}
