//! A container's logging configuration (`--log-driver`, `--log-opt`): the options every
//! driver shares (mode, max-buffer-size, the dual-logging cache), which the host handles,
//! and the `tag`, `labels`/`env` attributes the host renders for the driver.

use std::collections::BTreeMap;

use super::EngineError;
pub use crate::monitor::logpipe::Mode;

/// Docker's default driver.
pub const DEFAULT_DRIVER: &str = "json-file";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogConfig {
    pub driver: String,
    #[serde(default)]
    pub opts: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            driver: DEFAULT_DRIVER.into(),
            opts: BTreeMap::new(),
        }
    }
}

/// The dual-logging cache for drivers that cannot read back (Docker's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    pub max_size: String,
    pub max_file: String,
    pub compress: bool,
}

/// The options split into the host's and the driver's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub mode: Mode,
    /// None with `cache-disabled=true`.
    pub cache: Option<Cache>,
    pub driver_opts: Vec<(String, String)>,
}

/// Docker's `max-buffer-size` default (1 MB).
const DEFAULT_MAX_BUFFER: u64 = 1_000_000;

/// What the engine refuses about a container's logging, in Docker's words.
#[derive(Debug, thiserror::Error)]
pub enum LogRefusal {
    #[error("invalid log opt {0:?}: use KEY=VALUE")]
    NotKeyValue(String),
    #[error("invalid value for {key}: strconv.ParseBool: parsing {value:?}: invalid syntax")]
    NotBool { key: String, value: String },
    #[error("logger: logging mode not supported: {0}")]
    Mode(String),
    #[error("could not parse value for max-buffer-size: {0}")]
    MaxBuffer(String),
    #[error("max-buffer-size option is only supported with 'mode=non-blocking'")]
    MaxBufferWithoutNonBlocking,
    #[error("invalid tag template {template:?}: {reason}")]
    Tag { template: String, reason: String },
    #[error("invalid {key} {regex:?}: {source}")]
    Regex {
        key: String,
        regex: String,
        source: regex::Error,
    },
    /// The log driver's own refusal of its options, or of starting (its message).
    #[error("{message}")]
    Driver { driver: String, message: String },
    #[error("logger: no log driver named '{0}' is registered")]
    UnknownDriver(String),
    #[error("logger: plugin {0:?} is a network driver, not a log driver")]
    NotALogDriver(String),
    #[error("logger: plugin {0:?} is disabled (burrow plugin enable {0})")]
    DriverDisabled(String),
    #[error("configured logging driver does not support reading")]
    CannotRead,
    #[error("the log relay died while starting")]
    RelayDied,
    /// The relay's own one-line error, as it printed it before it died.
    #[error("{0}")]
    Relay(String),
}

fn parse_bool(key: &str, v: &str) -> Result<bool, EngineError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(LogRefusal::NotBool {
            key: key.to_string(),
            value: v.to_string(),
        }
        .into()),
    }
}

/// go-units `RAMInBytes`: binary multiples, "1m" = 1 MiB.
pub fn ram_in_bytes(v: &str) -> Option<u64> {
    let s = v.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

impl LogConfig {
    /// Builds the configuration from `--log-driver` and `--log-opt KEY=VALUE` values.
    pub fn from_flags(driver: Option<&str>, opts: &[String]) -> Result<LogConfig, EngineError> {
        let mut map = BTreeMap::new();
        for o in opts {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| LogRefusal::NotKeyValue(o.clone()))?;
            map.insert(k.to_string(), v.to_string());
        }
        Ok(LogConfig {
            driver: driver.unwrap_or(DEFAULT_DRIVER).to_string(),
            opts: map,
        })
    }

    /// Takes out what the host handles for every driver; the rest goes to the driver.
    pub fn split(&self) -> Result<Split, EngineError> {
        let mut mode = Mode::Blocking;
        let mut max_buffer = None;
        let mut cache = Cache {
            max_size: "20m".into(),
            max_file: "5".into(),
            compress: true,
        };
        let mut cache_disabled = false;
        let mut driver_opts = Vec::new();
        for (k, v) in &self.opts {
            match k.as_str() {
                "mode" => {
                    mode = match v.as_str() {
                        "" | "blocking" => Mode::Blocking,
                        "non-blocking" => Mode::NonBlocking { max_buffer: 0 },
                        _ => return Err(LogRefusal::Mode(v.clone()).into()),
                    }
                }
                "max-buffer-size" => {
                    max_buffer =
                        Some(ram_in_bytes(v).ok_or_else(|| LogRefusal::MaxBuffer(v.clone()))?)
                }
                "cache-disabled" => cache_disabled = parse_bool(k, v)?,
                "cache-max-size" => cache.max_size = v.clone(),
                "cache-max-file" => cache.max_file = v.clone(),
                "cache-compress" => cache.compress = parse_bool(k, v)?,
                _ => driver_opts.push((k.clone(), v.clone())),
            }
        }
        mode = match (mode, max_buffer) {
            (Mode::NonBlocking { .. }, b) => Mode::NonBlocking {
                max_buffer: b.unwrap_or(DEFAULT_MAX_BUFFER),
            },
            (Mode::Blocking, Some(_)) => {
                return Err(LogRefusal::MaxBufferWithoutNonBlocking.into());
            }
            (m, None) => m,
        };
        Ok(Split {
            mode,
            cache: (!cache_disabled).then_some(cache),
            driver_opts,
        })
    }
}

/// What the `tag` template and the attributes are made of.
pub struct TagFields<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub image_id: &'a str,
    pub image_name: &'a str,
    pub command: &'a str,
    pub hostname: &'a str,
}

/// Renders Docker's `tag` template (`{{.ID}}`, `{{.Name}}`, `{{.ImageName}}` …).
pub fn render_tag(template: &str, f: &TagFields) -> Result<String, EngineError> {
    let short = |s: &str| {
        s.trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>()
    };
    let fields = serde_json::json!({
        "ID": short(f.id),
        "FullID": f.id,
        "Name": f.name,
        "ImageID": short(f.image_id),
        "ImageFullID": f.image_id,
        "ImageName": f.image_name,
        "Command": f.command,
        "Hostname": f.hostname,
        "DaemonName": "burrow",
    });
    super::template::render(template, &fields).map_err(|reason| {
        LogRefusal::Tag {
            template: template.to_string(),
            reason,
        }
        .into()
    })
}

/// The attributes `labels`, `labels-regex`, `env` and `env-regex` select, sorted by key.
pub fn attributes(
    opts: &[(String, String)],
    labels: &BTreeMap<String, String>,
    env: &[String],
) -> Result<Vec<(String, String)>, EngineError> {
    let get = |k: &str| {
        opts.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let regex = |k: &str| {
        get(k)
            .map(|r| {
                regex::Regex::new(r).map_err(|source| LogRefusal::Regex {
                    key: k.to_string(),
                    regex: r.to_string(),
                    source,
                })
            })
            .transpose()
    };
    let mut out = BTreeMap::new();
    let wanted = |k: &str| {
        get(k)
            .map(|v| v.split(',').map(str::trim).map(String::from).collect())
            .unwrap_or_else(Vec::<String>::new)
    };
    let label_keys = wanted("labels");
    let label_re = regex("labels-regex")?;
    for (k, v) in labels {
        if label_keys.contains(k) || label_re.as_ref().is_some_and(|r| r.is_match(k)) {
            out.insert(k.clone(), v.clone());
        }
    }
    let env_keys = wanted("env");
    let env_re = regex("env-regex")?;
    for kv in env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if env_keys.iter().any(|e| e == k) || env_re.as_ref().is_some_and(|r| r.is_match(k)) {
            out.insert(k.to_string(), v.to_string());
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(opts: &[&str]) -> LogConfig {
        let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        LogConfig::from_flags(Some("syslog"), &opts).unwrap()
    }

    #[test]
    fn host_options_are_taken_out_and_checked_as_docker_does() {
        let s = config(&["mode=non-blocking", "max-buffer-size=4m", "tag=x"])
            .split()
            .unwrap();
        assert_eq!(
            s.mode,
            Mode::NonBlocking {
                max_buffer: 4 << 20
            }
        );
        assert_eq!(s.driver_opts, [("tag".to_string(), "x".to_string())]);
        assert!(s.cache.is_some());
        let s = config(&["mode=non-blocking"]).split().unwrap();
        assert_eq!(
            s.mode,
            Mode::NonBlocking {
                max_buffer: 1_000_000
            }
        );
        let s = config(&["cache-disabled=true"]).split().unwrap();
        assert_eq!((s.mode, s.cache), (Mode::Blocking, None));
        let err = |o: &[&str]| config(o).split().unwrap_err().to_string();
        assert_eq!(
            err(&["max-buffer-size=1m"]),
            "max-buffer-size option is only supported with 'mode=non-blocking'"
        );
        assert_eq!(
            err(&["mode=sometimes"]),
            "logger: logging mode not supported: sometimes"
        );
        assert!(LogConfig::from_flags(None, &["novalue".into()]).is_err());
    }

    #[test]
    fn tags_and_attributes_render_like_docker() {
        let f = TagFields {
            id: "0123456789abcdef0123",
            name: "web",
            image_id: "sha256:fedcba9876543210",
            image_name: "local/bb:1",
            command: "sh",
            hostname: "h",
        };
        assert_eq!(render_tag("{{.ID}}", &f).unwrap(), "0123456789ab");
        assert_eq!(
            render_tag("{{.ImageName}}/{{.Name}}/{{.ImageID}}", &f).unwrap(),
            "local/bb:1/web/fedcba987654"
        );
        assert!(render_tag("{{.Nope", &f).is_err());
        let labels = BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("zz".to_string(), "3".to_string()),
        ]);
        let env = vec!["FOO=bar".to_string(), "PATH=/bin".to_string()];
        let opts = vec![
            ("labels".to_string(), "b,a".to_string()),
            ("env-regex".to_string(), "^FO".to_string()),
        ];
        assert_eq!(
            attributes(&opts, &labels, &env).unwrap(),
            [
                ("FOO".to_string(), "bar".to_string()),
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string()),
            ]
        );
    }
}
