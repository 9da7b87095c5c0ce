//! Step display of long operations (create, provision, upgrade,
//! regenerate-certs): a spinner with the finished steps above it on a
//! terminal, one plain line per step otherwise (as the original printed them).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

/// Shows the steps of one operation.
#[derive(Debug)]
pub struct Steps {
    bar: Option<ProgressBar>,
    current: Mutex<Option<String>>,
    prefix: String,
}

fn line(step: &str) -> String {
    let t = step.trim_end();
    if t.ends_with(['.', '!', '?', ':']) {
        t.to_string()
    } else {
        format!("{t}...")
    }
}

impl Steps {
    /// A display for an operation on machine `name` (shown as a prefix when
    /// `tagged`, for commands that act on several machines).
    pub fn new(name: &str, tagged: bool) -> Self {
        let prefix = if tagged {
            format!("({name}) ")
        } else {
            String::new()
        };
        let bar = std::io::stdout().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(100));
            b
        });
        Steps {
            bar,
            current: Mutex::new(None),
            prefix,
        }
    }

    /// Report that `step` begins (the previous one is done).
    pub fn step(&self, step: &str) {
        let text = format!("{}{}", self.prefix, line(step));
        match &self.bar {
            Some(b) => {
                if let Ok(mut cur) = self.current.lock() {
                    if let Some(prev) = cur.replace(text.clone()) {
                        b.println(format!("✓ {prev}"));
                    }
                }
                b.set_message(text);
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
    }

    /// End the display; `ok` tells whether the last step succeeded.
    pub fn finish(&self, ok: bool) {
        if let Some(b) = &self.bar {
            let last = self.current.lock().ok().and_then(|mut c| c.take());
            b.finish_and_clear();
            if let Some(prev) = last {
                let mark = if ok { "✓" } else { "✗" };
                crate::emit(&format!("{mark} {prev}\n"));
            }
        }
    }
}
