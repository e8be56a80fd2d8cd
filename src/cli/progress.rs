//! Pull progress on stderr: a redrawn display on a terminal, plain lines otherwise,
//! nothing with -q.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::image::registry::{Progress, ProgressEvent};

use super::format::{human_size, short_id};

pub enum Mode {
    Quiet,
    Lines,
    Terminal,
}

pub struct Reporter {
    mode: Mode,
    /// (layer short id, status, bytes so far, size) in first-seen order, for the terminal.
    layers: Mutex<Vec<(String, String, u64, u64)>>,
}

impl Reporter {
    pub fn new(quiet: bool) -> Reporter {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Lines
        };
        Reporter {
            mode,
            layers: Mutex::new(Vec::new()),
        }
    }

    pub fn line(&self, text: &str) {
        if !matches!(self.mode, Mode::Quiet) {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    fn redraw(&self, layers: &[(String, String, u64, u64)], previously: usize) {
        let mut err = std::io::stderr().lock();
        if previously > 0 {
            let _ = write!(err, "\x1b[{previously}A");
        }
        for (id, status, done, total) in layers {
            let detail = if status == "Downloading" && *total > 0 {
                format!(" {}/{}", human_size(*done), human_size(*total))
            } else {
                String::new()
            };
            let _ = writeln!(err, "\x1b[2K{id}: {status}{detail}");
        }
        let _ = err.flush();
    }
}

impl Progress for Reporter {
    fn event(&self, ev: ProgressEvent) {
        if matches!(self.mode, Mode::Quiet) {
            return;
        }
        let (digest, status, bytes, size) = match ev {
            ProgressEvent::Resolved { manifest_digest } => {
                self.line(&format!("Digest: {manifest_digest}"));
                return;
            }
            ProgressEvent::LayerExists { digest } => (digest, "Already exists", 0, None),
            ProgressEvent::LayerStart { digest, size } => (digest, "Downloading", 0, Some(size)),
            ProgressEvent::LayerBytes { digest, bytes } => (digest, "Downloading", bytes, None),
            ProgressEvent::LayerDone { digest } => (digest, "Download complete", 0, None),
        };
        let id = short_id(&digest);
        let mut layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        let before = layers.len();
        let pos = match layers.iter().position(|l| l.0 == id) {
            Some(p) => p,
            None => {
                layers.push((id.clone(), String::new(), 0, 0));
                layers.len() - 1
            }
        };
        let entry = &mut layers[pos];
        let changed = entry.1 != status;
        entry.1 = status.to_string();
        // LayerBytes carries the running total of the current attempt.
        if status == "Downloading" {
            entry.2 = bytes;
        }
        if let Some(total) = size {
            entry.3 = total;
        }
        match self.mode {
            Mode::Terminal => self.redraw(&layers, before),
            Mode::Lines if changed => self.line(&format!("{id}: {status}")),
            _ => {}
        }
    }
}
