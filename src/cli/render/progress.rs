//! The live display of a transfer: bars per service on a terminal, plain lines otherwise (CI),
//! nothing with `--quiet`.

use super::{human_bytes, short};
use crate::app::reports::{BlobOutcome, TransferEvent as Event};

/// Renders push events: live bars per service on a terminal, plain lines otherwise (CI),
/// nothing with `--quiet`.
pub struct ProgressDisplay {
    quiet: bool,
    bars: Option<indicatif::MultiProgress>,
    /// Bar and bytes uploaded so far, by repository.
    by_repo: std::sync::Mutex<std::collections::HashMap<String, (indicatif::ProgressBar, u64)>>,
}

impl ProgressDisplay {
    /// A display; `quiet` shows nothing.
    pub fn new(quiet: bool) -> Self {
        use std::io::IsTerminal;
        let live = !quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        ProgressDisplay {
            quiet,
            bars: live.then(indicatif::MultiProgress::new),
            by_repo: Default::default(),
        }
    }

    /// Show one transfer event.
    pub fn event(&self, e: Event) {
        if self.quiet {
            return;
        }
        match &self.bars {
            None => line(e),
            Some(multi) => self.bar(multi, e),
        }
    }

    /// Update the bars for one event.
    fn bar(&self, multi: &indicatif::MultiProgress, e: Event) {
        let Ok(mut bars) = self.by_repo.lock() else {
            return;
        };
        match e {
            Event::Planned {
                service,
                repository,
                blobs,
                ..
            } => {
                let bar = multi.add(indicatif::ProgressBar::new(blobs as u64));
                let style = indicatif::ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos}/{len} blobs {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(service);
                bars.insert(repository, (bar, 0));
            }
            Event::Blob {
                repository,
                size,
                outcome,
                ..
            } => {
                if let Some((bar, uploaded)) = bars.get_mut(&repository) {
                    bar.inc(1);
                    if matches!(
                        outcome,
                        BlobOutcome::Uploaded
                            | BlobOutcome::WouldUpload
                            | BlobOutcome::Copied
                            | BlobOutcome::WouldCopy
                    ) {
                        *uploaded += size;
                        bar.set_message(format!("{} uploaded", human_bytes(*uploaded)));
                    }
                }
            }
            Event::Service { service, error } => {
                if let Some((bar, _)) = bars.values().find(|(b, _)| b.prefix() == service) {
                    match error {
                        None => bar.finish_with_message("done"),
                        Some(_) => bar.abandon_with_message("FAILED"),
                    }
                }
            }
        }
    }

    /// Close the bars.
    pub fn finish(&self) {
        if let Some(m) = &self.bars {
            let _ = m.clear();
        }
    }
}

/// One event as a plain line on stderr (CI, or not a terminal).
fn line(e: Event) {
    match e {
        Event::Planned {
            service,
            blobs,
            bytes,
            ..
        } => {
            eprintln!("{service}: {blobs} blobs, {} to check", human_bytes(bytes))
        }
        Event::Blob {
            repository,
            digest,
            size,
            outcome,
        } => {
            let what = match outcome {
                BlobOutcome::Uploaded => "uploaded",
                BlobOutcome::Mounted => "mounted",
                BlobOutcome::Skipped => "exists",
                BlobOutcome::WouldUpload => "would upload",
                BlobOutcome::WouldMount => "would mount",
                BlobOutcome::Copied => "streamed from another registry",
                BlobOutcome::WouldCopy => "would stream from another registry",
            };
            eprintln!(
                "{repository}: {what} {} ({})",
                short(&digest),
                human_bytes(size)
            );
        }
        Event::Service {
            service,
            error: None,
        } => eprintln!("{service}: done"),
        Event::Service {
            service,
            error: Some(e),
        } => eprintln!("{service}: FAILED: {e}"),
    }
}
