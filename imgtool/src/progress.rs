//! Progress reporting for blob copies: an indicatif bar per layer and a total on a terminal,
//! one plain line per blob otherwise (logs and tests read those), nothing with `--quiet`.
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    mode: Mode,
}

enum Mode {
    Quiet,
    Plain,
    Bars {
        multi: MultiProgress,
        total: ProgressBar,
    },
}

/// Progress of one blob.
pub struct BlobProgress {
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
    plain: bool,
    label: String,
}

fn short(digest: &str) -> &str {
    crate::reference::short_id(digest)
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total = multi.add(ProgressBar::new(0));
            total.set_style(
                ProgressStyle::with_template(
                    "total      [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Mode::Bars { multi, total }
        } else {
            Mode::Plain
        };
        Progress { mode }
    }

    /// A line of status ("Writing manifest…") outside any bar.
    pub fn message(&self, msg: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain => errln!("{msg}"),
            Mode::Bars { multi, .. } => {
                let _ = multi.println(msg);
            }
        }
    }

    /// Start reporting one blob of `size` bytes.
    pub fn blob(&self, kind: &str, digest: &str, size: u64) -> BlobProgress {
        let label = format!("{kind} {}", short(digest));
        match &self.mode {
            Mode::Quiet => BlobProgress {
                bar: None,
                total: None,
                plain: false,
                label,
            },
            Mode::Plain => BlobProgress {
                bar: None,
                total: None,
                plain: true,
                label,
            },
            Mode::Bars { multi, total } => {
                total.inc_length(size);
                let bar = multi.insert_before(total, ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(label.clone());
                BlobProgress {
                    bar: Some(bar),
                    total: Some(total.clone()),
                    plain: false,
                    label,
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Mode::Bars { total, .. } = &self.mode {
            total.finish_and_clear();
        }
    }
}

impl BlobProgress {
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        if let Some(t) = &self.total {
            t.inc(n);
        }
    }

    /// Bytes already counted are being fetched again (a restart after a failed resume).
    pub fn rewind(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(b.position().saturating_sub(n));
        }
        if let Some(t) = &self.total {
            t.set_position(t.position().saturating_sub(n));
        }
    }

    pub fn done(&self, how: &str) {
        if let Some(b) = &self.bar {
            b.finish_with_message(how.to_string());
        }
        if self.plain {
            errln!("Copying {} {how}", self.label);
        }
    }

    /// A blob already in the store: counted as done without transfer.
    pub fn skipped(&self) {
        self.skipped_as("already exists");
    }

    /// A blob the destination got without a transfer, for the reason `how` ("mounted").
    pub fn skipped_as(&self, how: &str) {
        if let (Some(b), Some(t)) = (&self.bar, &self.total) {
            b.set_position(b.length().unwrap_or(0));
            t.inc(b.length().unwrap_or(0));
        }
        self.done(how);
    }
}
