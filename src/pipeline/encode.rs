//! The encoding stage of a backup: SQL text → zstd → age → SHA-256, on a
//! blocking thread, emitting chunks of ciphertext.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{Receiver, Sender};

use super::{CHUNK, Piece};
use crate::progress::Progress;

/// What the encoding stage produced.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub plaintext_bytes: u64,
    pub stored_bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("the source stopped before the end of its dump")]
    Upstream,
    #[error("every target stopped taking data")]
    Downstream,
    #[error("zstd: {0}")]
    Zstd(std::io::Error),
    #[error("age: {0}")]
    Age(String),
}

/// Hashes what it is given and sends it on in chunks of [`CHUNK`] bytes.
struct HashingSender {
    tx: Sender<Piece>,
    hasher: Sha256,
    buf: Vec<u8>,
    total: u64,
    progress: Arc<Progress>,
}

impl HashingSender {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.progress.add_stored(chunk.len());
        self.tx
            .blocking_send(Piece::Data(Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "targets gone"))
    }
}

impl Write for HashingSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(data);
        self.total += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the stage to completion. Blocking: call it from `spawn_blocking`.
pub fn encode(
    mut rx: Receiver<Piece>,
    tx: Sender<Piece>,
    recipients: Vec<age::x25519::Recipient>,
    level: i32,
    threads: u32,
    progress: Arc<Progress>,
) -> Result<Encoded, EncodeError> {
    let sink = HashingSender {
        tx: tx.clone(),
        hasher: Sha256::new(),
        buf: Vec::with_capacity(CHUNK),
        total: 0,
        progress,
    };
    let down = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            EncodeError::Downstream
        } else {
            EncodeError::Zstd(e)
        }
    };
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| EncodeError::Age(e.to_string()))?;
    let age_writer = encryptor.wrap_output(sink).map_err(down)?;
    let mut zstd =
        zstd::stream::write::Encoder::new(age_writer, level).map_err(EncodeError::Zstd)?;
    if threads > 0 {
        zstd.multithread(threads).map_err(EncodeError::Zstd)?;
    }
    let mut plaintext = 0u64;
    let mut ended = false;
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Data(b) => {
                plaintext += b.len() as u64;
                zstd.write_all(&b).map_err(down)?;
            }
            Piece::End => {
                ended = true;
                break;
            }
        }
    }
    if !ended {
        return Err(EncodeError::Upstream);
    }
    let age_writer = zstd.finish().map_err(down)?;
    let mut sink = age_writer.finish().map_err(down)?;
    sink.flush_chunk().map_err(down)?;
    let sha256 = hex::encode(sink.hasher.finalize());
    let stored_bytes = sink.total;
    tx.blocking_send(Piece::End)
        .map_err(|_| EncodeError::Downstream)?;
    Ok(Encoded {
        plaintext_bytes: plaintext,
        stored_bytes,
        sha256,
    })
}
