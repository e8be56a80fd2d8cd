//! `RUN --mount=type=cache,target=/root/.cache` values, as BuildKit reads them
//! (`instructions/commands_runmount.go`): comma-separated `key=value` fields in CSV quoting.
//!
//! The CSV record is split here rather than with the `csv` crate: BuildKit uses Go's strict
//! rules (a quote inside an unquoted field is an error), which that crate does not enforce.

use crate::build::shell::ShellError;

use super::error::closest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl std::fmt::Display for MountType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        })
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `--mount` of a RUN instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    /// A stage or image to take the source from.
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// Cache or secret id.
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    /// A secret or ssh mount fails the build when absent.
    pub required: bool,
    /// The environment variable a secret is exposed as.
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("failed to parse csv mounts: {0}")]
    Csv(&'static str),
    #[error("invalid field '{0}' must be a key=value pair")]
    NotKeyValue(String),
    #[error("unexpected key '{key}' for mount type '{kind}'")]
    KeyForType { key: String, kind: MountType },
    #[error("'from' doesn't support variable expansion, define alias stage instead")]
    FromVariable,
    #[error("unsupported mount type {0:?} (use bind, cache, tmpfs, secret or ssh)")]
    Type(String),
    #[error("invalid value for {key}: {value}")]
    Value { key: String, value: String },
    #[error("unsupported sharing value {0:?} (use shared, private or locked)")]
    Sharing(String),
    #[error("invalid value {value} for {key}")]
    Number { key: &'static str, value: String },
    #[error("unexpected key '{key}' in '{field}'{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownKey {
        key: String,
        field: String,
        suggestion: Option<String>,
    },
    #[error("{what} not allowed for {kind:?} type mounts")]
    NotAllowed { what: &'static str, kind: String },
    #[error("secret mount should not have a from")]
    SecretFrom,
    #[error("secret mount should not define sharing")]
    SecretSharing,
    #[error("invalid secret mount: one of source, target required")]
    SecretTarget,
    #[error("both source and id can't be set")]
    SecretSourceAndId,
    #[error("invalid cache sharing set for {0} mount")]
    SharingNotCache(MountType),
    #[error("cannot expand a --mount value: {0}")]
    Expand(ShellError),
}

const KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Split one CSV record as Go's encoding/csv does.
fn csv_fields(s: &str) -> Result<Vec<String>, MountError> {
    let mut fields = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(MountError::Csv("extraneous or missing \" in quoted-field"));
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err(MountError::Csv("extraneous or missing \" in quoted-field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err(MountError::Csv("bare \" in non-quoted-field")),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// BuildKit keeps these as strings where empty means unset.
fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, MountError> {
    // Go's strconv.ParseBool.
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(MountError::Value {
            key: key.to_string(),
            value: value.to_string(),
        }),
    }
}

/// Docker's `units.RAMInBytes`: `64m`, `1.5g`, `512KiB`, `100` (binary multiples).
fn ram_in_bytes(s: &str) -> Option<u64> {
    let lower = s.to_lowercase();
    let num_len = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let value: f64 = lower[..num_len].parse().ok()?;
    let unit = lower[num_len..].trim_start_matches(' ');
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    Some((value * 1024f64.powi(power)) as u64)
}

/// Expands variables in one word.
pub type Expander<'a> = &'a mut dyn FnMut(&str) -> Result<String, ShellError>;

/// Parse a `--mount` value. With `expand`, values are expanded and checked; without it (at
/// parse time, before the build's variables are known) only the CSV syntax and `from` are.
pub fn parse_mount(value: &str, mut expand: Option<Expander<'_>>) -> Result<Mount, MountError> {
    let mut m = Mount {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        read_only: false,
        size: None,
        id: None,
        sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut ro_auto = true;
    let secret_like = |m: &Mount| matches!(m.kind, MountType::Secret | MountType::Ssh);
    for field in csv_fields(value)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v.to_string())),
            None => (field.to_lowercase(), None),
        };
        let Some(value) = value else {
            if expand.is_none() {
                continue;
            }
            match key.as_str() {
                "readonly" | "ro" => m.read_only = true,
                "readwrite" | "rw" => m.read_only = false,
                "required" if secret_like(&m) => m.required = true,
                "required" => return Err(MountError::KeyForType { key, kind: m.kind }),
                _ => return Err(MountError::NotKeyValue(field)),
            }
            ro_auto = false;
            continue;
        };
        let value = match expand.as_mut() {
            Some(f) => f(&value).map_err(MountError::Expand)?,
            None => {
                if key == "from" && value.find('$').is_some_and(|i| i + 1 != value.len()) {
                    return Err(MountError::FromVariable);
                }
                continue;
            }
        };
        let number = |key: &'static str, radix: u32| {
            u32::from_str_radix(&value, radix).map_err(|_| MountError::Number {
                key,
                value: value.clone(),
            })
        };
        match key.as_str() {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(MountError::Type(value)),
                }
            }
            "from" => m.from = non_empty(value),
            "source" | "src" => m.source = non_empty(value),
            "target" | "dst" | "destination" => m.target = non_empty(value),
            "readonly" | "ro" => {
                m.read_only = parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "required" if secret_like(&m) => m.required = parse_bool(&key, &value)?,
            "required" => return Err(MountError::KeyForType { key, kind: m.kind }),
            "size" if m.kind == MountType::Tmpfs => {
                m.size = Some(ram_in_bytes(&value).ok_or(MountError::Value {
                    key: key.clone(),
                    value: value.clone(),
                })?)
            }
            "size" => return Err(MountError::KeyForType { key, kind: m.kind }),
            "id" => m.id = non_empty(value),
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(MountError::Sharing(value)),
                })
            }
            "mode" => m.mode = Some(number("mode", 8)?),
            "uid" => m.uid = Some(number("uid", 10)?),
            "gid" => m.gid = Some(number("gid", 10)?),
            "env" => m.env = Some(value),
            _ => {
                return Err(MountError::UnknownKey {
                    suggestion: closest(&key, KEYS, true),
                    key,
                    field,
                });
            }
        }
    }
    let file_info = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info {
        for (what, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(MountError::NotAllowed {
                    what,
                    kind: m.kind.to_string(),
                });
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err(MountError::SecretFrom);
        }
        if m.sharing.is_some() {
            return Err(MountError::SecretSharing);
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err(MountError::SecretTarget);
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(MountError::SecretSourceAndId);
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(MountError::SharingNotCache(m.kind));
    }
    Ok(m)
}
