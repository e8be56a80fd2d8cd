//! Image commands: pull, images, tag, rmi, image inspect/prune, login, logout.

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::format::{Format, align, human_duration, human_size, short_id, since_rfc3339};
use super::out;
use super::progress::Reporter;
use crate::engine::{Engine, PullOptions};

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Image name: NAME[:TAG|@DIGEST]
    pub image: String,
    /// Require HTTPS and verify certificates (false allows plain http)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Platform to choose from a multi-arch image, e.g. linux/arm64/v8
    #[arg(long)]
    pub platform: Option<String>,
    /// Print nothing but the image id
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Default)]
pub struct ImagesArgs {
    /// Only images whose repository matches REPOSITORY[:TAG]
    pub reference: Option<String>,
    /// Show all images (burrow keeps no intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Only image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Do not truncate ids
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: dangling=true|false, reference=PATTERN
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Go template, or "table TEMPLATE", or "json"
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove even when tagged more than once or used by a container
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    pub server: String,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    pub server: String,
}

#[derive(Args, Debug)]
pub struct InspectImageArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Go template
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all images no container uses, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask (burrow never asks; accepted for Docker compatibility)
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Pull an image
    Pull(PullArgs),
    /// Show image details
    Inspect(InspectImageArgs),
    /// Remove images
    Rm(RmiArgs),
    /// Tag an image
    Tag(TagArgs),
    /// Remove unused images
    Prune(PruneArgs),
}

pub fn image_command(engine: &Engine, c: ImageCommand) -> Result<i32> {
    match c {
        ImageCommand::Ls(a) => images(engine, a),
        ImageCommand::Pull(a) => pull(engine, a),
        ImageCommand::Inspect(a) => inspect_images(engine, &a.images, a.format.as_deref()),
        ImageCommand::Rm(a) => rmi(engine, a),
        ImageCommand::Tag(a) => tag(engine, a),
        ImageCommand::Prune(a) => prune(engine, a),
    }
}

pub fn pull(engine: &Engine, a: PullArgs) -> Result<i32> {
    let reporter = Reporter::new(a.quiet);
    let opts = PullOptions {
        tls_verify: a.tls_verify,
        platform: a.platform,
    };
    let reference = crate::image::reference::Reference::parse(&a.image)?;
    if !a.image.contains(':') && !a.image.contains('@') {
        reporter.line("Using default tag: latest");
    }
    let id = engine
        .images()
        .pull(&a.image, &opts, &reporter)
        .with_context(|| format!("cannot pull {}", a.image))?;
    if a.quiet {
        out(&format!("{id}\n"));
    } else {
        reporter.line(&format!("Status: Downloaded image for {}", a.image));
        out(&format!("{reference}\n"));
    }
    Ok(0)
}

pub fn images(engine: &Engine, a: ImagesArgs) -> Result<i32> {
    let mut rows = engine.images().list()?;
    for f in &a.filter {
        match f.split_once('=') {
            Some(("dangling", v)) => {
                let want = matches!(v, "true" | "1");
                rows.retain(|r| r.dangling == want);
            }
            Some(("reference", pattern)) => {
                let pattern = pattern.to_string();
                rows.retain(|r| matches_reference(&pattern, &r.repository, &r.tag));
            }
            _ => bail!("invalid filter {f:?}: use dangling=true|false or reference=PATTERN"),
        }
    }
    if let Some(reference) = &a.reference {
        rows.retain(|r| matches_reference(reference, &r.repository, &r.tag));
    }
    if a.quiet {
        let mut seen = Vec::new();
        for r in &rows {
            let id = if a.no_trunc {
                r.id.clone()
            } else {
                short_id(&r.id)
            };
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        out(&seen.iter().map(|s| format!("{s}\n")).collect::<String>());
        return Ok(0);
    }
    let records: Vec<_> = rows
        .iter()
        .map(|r| {
            let age = r.created.as_deref().and_then(since_rfc3339);
            json!({
                "ID": if a.no_trunc { r.id.clone() } else { short_id(&r.id) },
                "Repository": r.repository,
                "Tag": r.tag,
                "Digest": r.digest,
                "CreatedSince": age.map_or("N/A".into(), |s| format!("{} ago", human_duration(s))),
                "CreatedAt": r.created.clone().unwrap_or_default(),
                "Size": human_size(r.size),
                "Containers": "N/A",
            })
        })
        .collect();
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let header = json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "Containers": "CONTAINERS",
    });
    print_records(a.format.as_deref(), default, &header, &records)
}

/// Renders records with --format (Go template, "table …", or "json"), else `default`.
pub fn print_records(
    format: Option<&str>,
    default: &str,
    header: &serde_json::Value,
    records: &[serde_json::Value],
) -> Result<i32> {
    let spec = match format {
        None | Some("") | Some("table") => default,
        Some("json") => {
            let lines: String = records.iter().map(|r| format!("{r}\n")).collect();
            out(&lines);
            return Ok(0);
        }
        Some(f) => f,
    };
    let fmt = Format::parse(spec)?;
    let mut lines = Vec::new();
    if fmt.table {
        lines.push(fmt.render(header)?);
    }
    for r in records {
        lines.push(fmt.render(r)?);
    }
    if fmt.table {
        out(&align(&lines));
    } else {
        out(&lines.iter().map(|l| format!("{l}\n")).collect::<String>());
    }
    Ok(0)
}

/// Docker's reference filter: `busybox`, `busybox:latest`, `127.0.0.1:5000/*` (a `*`
/// matches within one path component).
fn matches_reference(pattern: &str, repository: &str, tag: &str) -> bool {
    let full = format!("{repository}:{tag}");
    glob(pattern, repository) || glob(pattern, &full)
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(after) = text.strip_prefix(head) else {
                return false;
            };
            (0..=after.len()).any(|i| {
                after.is_char_boundary(i) && !after[..i].contains('/') && glob(rest, &after[i..])
            })
        }
    }
}

pub fn inspect_images(engine: &Engine, keys: &[String], format: Option<&str>) -> Result<i32> {
    let mut docs = Vec::new();
    let mut missing = None;
    for key in keys {
        match engine.images().resolve(key) {
            Ok(image) => docs.push(engine.images().inspect(&image)?),
            Err(e) => {
                eprintln!("burrow: {e}");
                missing = Some(1);
            }
        }
    }
    print_inspect(&docs, format)?;
    Ok(missing.unwrap_or(0))
}

pub fn print_inspect(docs: &[serde_json::Value], format: Option<&str>) -> Result<()> {
    match format {
        Some(f) if !f.is_empty() => {
            let fmt = Format::parse(f)?;
            for d in docs {
                out(&format!("{}\n", fmt.render(d)?));
            }
        }
        _ => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(docs).expect("json")
        )),
    }
    Ok(())
}

pub fn tag(engine: &Engine, a: TagArgs) -> Result<i32> {
    engine.images().tag(&a.source, &a.target)?;
    Ok(0)
}

pub fn rmi(engine: &Engine, a: RmiArgs) -> Result<i32> {
    let mut code = 0;
    for key in &a.images {
        match engine.images().remove(key, a.force) {
            Ok(removed) => {
                let mut text = String::new();
                for u in &removed.untagged {
                    text.push_str(&format!("Untagged: {u}\n"));
                }
                for d in &removed.deleted {
                    text.push_str(&format!("Deleted: {d}\n"));
                }
                out(&text);
            }
            Err(e) => {
                eprintln!("burrow: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn prune(engine: &Engine, a: PruneArgs) -> Result<i32> {
    let (deleted, reclaimed) = engine.images().prune(a.all)?;
    let mut text = String::new();
    if !deleted.is_empty() {
        text.push_str("Deleted Images:\n");
        for d in &deleted {
            text.push_str(&format!("deleted: {d}\n"));
        }
        text.push('\n');
    }
    text.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed)
    ));
    out(&text);
    Ok(0)
}

pub fn login(engine: &Engine, a: LoginArgs) -> Result<i32> {
    let Some(user) = a.username else {
        bail!(
            "login needs --username (burrow never prompts; use --password-stdin for the password)"
        );
    };
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            bail!("login needs --password or --password-stdin (burrow never prompts)")
        }
    };
    engine
        .images()
        .login(&a.server, &user, &password, a.tls_verify)
        .with_context(|| format!("cannot log in to {}", a.server))?;
    out("Login Succeeded\n");
    Ok(0)
}

pub fn logout(engine: &Engine, a: LogoutArgs) -> Result<i32> {
    if engine.images().logout(&a.server)? {
        out(&format!("Removing login credentials for {}\n", a.server));
        Ok(0)
    } else {
        bail!("not logged in to {}", a.server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filters_glob_within_components() {
        assert!(matches_reference("busybox", "busybox", "latest"));
        assert!(matches_reference("busybox:latest", "busybox", "latest"));
        assert!(!matches_reference("busybox:1", "busybox", "latest"));
        assert!(matches_reference(
            "127.0.0.1:5111/*/*",
            "127.0.0.1:5111/fixtures/busybox",
            "x"
        ));
        assert!(!matches_reference(
            "127.0.0.1:5111/*",
            "127.0.0.1:5111/fixtures/busybox",
            "x"
        ));
    }
}
