//! Errors of the Dockerfile parser. Messages keep Docker's wording where Docker has one, in
//! lower case, and add what to do where Docker does not say.

use crate::build::shell::ShellError;

/// A Dockerfile that cannot be parsed, with the line its instruction starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct ParseError {
    /// The name the Dockerfile was given (`Dockerfile` unless the caller says otherwise).
    pub file: String,
    pub line: usize,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    // The file as lines.
    #[error("file with no instructions")]
    NoInstructions,
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscapeToken(String),
    #[error("dockerfile line greater than max allowed size of 65535")]
    LineTooLong,
    #[error("unterminated heredoc {0:?} (end it with a line holding only {0})")]
    UnterminatedHeredoc(String),
    #[error("internal lexing of heredoc produced inconsistent results: {0}")]
    InconsistentHeredoc(String),
    #[error("invalid heredoc: {0}")]
    HeredocWord(ShellError),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    #[error("{0} must have two arguments")]
    MissingValue(&'static str),
    #[error("syntax error - can't find = in {0:?}; must be of the form: name=value")]
    MissingEquals(String),

    // Instructions.
    #[error("unknown instruction: {name}{}", suggest(suggestion))]
    UnknownInstruction {
        name: String,
        suggestion: Option<String>,
    },
    #[error(
        "no build stage in current context (the first instruction other than ARG must be FROM)"
    )]
    NoStage,
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    StageName(String),
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(&'static str),
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(&'static str),
    #[error(
        "{0} requires at least two arguments, but only one was provided; destination could not be determined"
    )]
    NoDestination(&'static str),
    #[error("{0} cannot accept a heredoc as a destination")]
    HeredocDestination(&'static str),
    #[error("{0} names can not be blank")]
    BlankName(&'static str),
    #[error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    #[error("onbuild trigger should be a single expression")]
    OnbuildExpression,
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    #[error("missing command after HEALTHCHECK CMD")]
    HealthcheckNoCommand,
    #[error("unknown type {0:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    #[error("invalid duration {value:?} for --{flag} (write it as Go does: 30s, 1m30s, 500ms)")]
    Duration { flag: &'static str, value: String },
    #[error("interval \"--{0}\" cannot be less than 1ms")]
    DurationTooShort(&'static str),
    #[error("invalid value {0:?} for --retries (give a whole number)")]
    Retries(String),
    #[error("--retries cannot be negative ({0})")]
    NegativeRetries(i64),
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    #[error("{0} requires the arguments to be in JSON form")]
    NotJson(&'static str),
    #[error("invalid network mode {0:?} (use default, none or host)")]
    NetworkMode(String),
    #[error("security {0:?} is not valid (use sandbox or insecure)")]
    Security(String),

    // Flags.
    #[error("unknown flag: {flag}{}", suggest(suggestion))]
    UnknownFlag {
        flag: String,
        suggestion: Option<String>,
    },
    #[error("duplicate flag specified: {0}")]
    DuplicateFlag(String),
    #[error("missing a value on flag: {0}")]
    MissingFlagValue(String),
    #[error("expecting boolean value for flag {flag}, not: {value}")]
    FlagNotBool { flag: String, value: String },
    #[error("arg should start with -- : {0}")]
    NotAFlag(String),
    #[error(transparent)]
    Mount(#[from] super::mount::MountError),
}

fn suggest(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => String::new(),
    }
}

/// The closest of `options` to `value` (Levenshtein distance below 3), as BuildKit's
/// suggestions; `None` on an exact match or when nothing is close.
pub(crate) fn closest(value: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let lower = value.to_lowercase();
    let v = if case_sensitive {
        value
    } else {
        lower.as_str()
    };
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let o = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if v == o {
            return None;
        }
        let d = levenshtein(v, &o);
        if d < min {
            min = d;
            best = Some(if case_sensitive {
                o
            } else if value == value.to_lowercase() {
                o.to_lowercase()
            } else if value == value.to_uppercase() {
                o.to_uppercase()
            } else {
                o
            });
        }
    }
    best
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
