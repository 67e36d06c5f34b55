//! Live progress of a running job: counters shared by the stages, the CLI's
//! terminal display and (later) the API.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters of one job; cheap to update from any stage.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    /// Plain SQL bytes read from the source (or produced by decryption).
    pub plain_bytes: AtomicU64,
    /// Encrypted bytes handed to (or read from) the stores.
    pub stored_bytes: AtomicU64,
    /// Rows seen.
    pub rows: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            started: Instant::now(),
            plain_bytes: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
            rows: AtomicU64::new(0),
        }
    }
}

impl Progress {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn add_plain(&self, n: usize) {
        self.plain_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_stored(&self, n: usize) {
        self.stored_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// One line for humans: `412.0 MiB read, 98.3 MiB stored, 180.2 MiB/s`.
    pub fn line(&self, verb: &str) -> String {
        let plain = self.plain_bytes.load(Ordering::Relaxed);
        let stored = self.stored_bytes.load(Ordering::Relaxed);
        let secs = self.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{verb}: {} plain, {} stored, {}/s",
            human_bytes(plain),
            human_bytes(stored),
            human_bytes((plain as f64 / secs) as u64)
        )
    }
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Shows progress on stderr twice a second while a job runs, if stderr is a
/// terminal and `enabled`; stops when dropped.
pub struct Ticker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Ticker {
    pub fn start(progress: Arc<Progress>, verb: &'static str, enabled: bool) -> Ticker {
        if !enabled || !std::io::stderr().is_terminal() {
            return Ticker {
                stop: None,
                task: None,
            };
        }
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tick.tick() => {
                        let mut err = std::io::stderr();
                        let _ = write!(err, "\r\x1b[2K{}", progress.line(verb));
                        let _ = err.flush();
                    }
                }
            }
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        });
        Ticker {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the display and clears its line.
    pub async fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
