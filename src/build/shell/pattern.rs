//! The shell patterns of `${VAR#p}`, `${VAR%p}` and `${VAR/p/r}`: `*` any string, `?` any
//! character, `\` escapes `*`, `?` and itself (and `}` or `/`, which only end the word).
//! Bracket expressions are not supported, as in BuildKit. Patterns become regular
//! expressions, as BuildKit's `convertShellPatternToRegex` builds them.

use regex::Regex;

/// A pattern the lexer cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("invalid escape '\\{0}' (only \\*, \\? and \\\\ can be escaped)")]
    InvalidEscape(char),
    #[error("a trailing '\\' escapes nothing (write \\\\ for a backslash)")]
    TrailingEscape,
    /// Every character is escaped, so only the regex size limit can refuse it.
    #[error("the pattern is too large")]
    TooLarge,
}

/// The regular expression for `pattern`; `*` is greedy or not, anchored at the start or not.
pub(super) fn to_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, PatternError> {
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let mut chars = pattern.chars().peekable();
    while let Some(tok) = chars.next() {
        match tok {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                // `}` and `/` are escaped only so they do not end the ${} word.
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(c @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(c);
                    }
                    Some(c) => return Err(PatternError::InvalidEscape(c)),
                    None => return Err(PatternError::TrailingEscape),
                }
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                out.push('\\');
                out.push(tok);
            }
            _ => out.push(tok),
        }
    }
    Regex::new(&out).map_err(|_| PatternError::TooLarge)
}

/// `${VAR#pattern}` (shortest) and `${VAR##pattern}` (longest): `value` without the prefix
/// the pattern matches.
pub(super) fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, PatternError> {
    let re = to_regex(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// `${VAR%pattern}` (shortest) and `${VAR%%pattern}` (longest): `value` without the suffix
/// the pattern matches. Regular expressions cannot find the shortest rightmost match, so
/// both the pattern and the value are reversed and the prefix is trimmed instead.
pub(super) fn trim_suffix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, PatternError> {
    let reversed = trim_prefix(&reverse_pattern(pattern), &reverse(value), greedy)?;
    Ok(reverse(&reversed))
}

/// `${VAR/pattern/replacement}` (first match) and `${VAR//pattern/replacement}` (all).
pub(super) fn replace(
    pattern: &str,
    replacement: &str,
    value: &str,
    all: bool,
) -> Result<String, PatternError> {
    let re = to_regex(pattern, true, false)?;
    if all {
        // As Go's ReplaceAllString, `$1`-style references in the replacement are expanded.
        return Ok(re.replace_all(value, replacement).into_owned());
    }
    Ok(match re.find(value) {
        Some(m) => format!(
            "{}{}{}",
            &value[..m.start()],
            replacement,
            &value[m.end()..]
        ),
        None => value.to_string(),
    })
}

fn reverse(s: &str) -> String {
    s.chars().rev().collect()
}

/// Reverse a pattern, keeping each escape before the character it escapes: `a\*c` → `c\*a`.
pub(super) fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; chars.len()];
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while i < chars.len() {
        let out_idx = last - i;
        if chars[i] == '\\' && i != last {
            out[out_idx - 1] = '\\';
            out[out_idx] = chars[i + 1];
            i += 2;
        } else {
            out[out_idx] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}
