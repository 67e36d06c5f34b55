//! One job at a time, as stages on their own tasks joined by bounded channels:
//! backup (source → zstd → age → SHA-256 → fan-out → stores), restore
//! (store → SHA-256 → age⁻¹ → zstd⁻¹ → destination) and verify.
//!
//! Every channel carries [`Piece`]s and ends with an explicit [`Piece::End`]: a
//! channel that closes without it means the stage before failed, and whatever
//! follows is abandoned (uploads aborted, restores rolled back).

pub mod anonymize_copy;
pub mod backup;
pub mod context;
pub mod encode;
pub mod fanout;
pub mod heal;
pub mod lock;
pub mod prune;
pub mod restore;
pub mod verify;

use bytes::Bytes;

pub use context::{Context, ContextError};

/// Size of the chunks that travel between stages.
pub const CHUNK: usize = 256 << 10;
/// Chunks buffered between two stages (memory bound: `CAPACITY × CHUNK` per channel).
pub const CAPACITY: usize = 4;

/// What travels between stages.
#[derive(Debug, Clone)]
pub enum Piece {
    Data(Bytes),
    /// The stage before finished successfully: nothing follows.
    End,
}

/// Bounded channel of pieces.
pub fn channel() -> (
    tokio::sync::mpsc::Sender<Piece>,
    tokio::sync::mpsc::Receiver<Piece>,
) {
    tokio::sync::mpsc::channel(CAPACITY)
}

/// Seconds since `start`, rounded to milliseconds, for reports.
pub(crate) fn seconds_since(start: std::time::Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}
