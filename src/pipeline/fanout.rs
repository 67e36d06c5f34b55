//! Fan-out: one stream of ciphertext to every target of a backup at once.
//!
//! Each target gets its own bounded channel; a chunk is handed to every live
//! target before the next is read (backpressure: the slowest target sets the
//! pace, memory stays bounded). A target whose upload fails drops out; the
//! others go on. If the stream does not end with [`Piece::End`], every upload
//! receives an error item and abandons its object.

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc::{self, Receiver, Sender};

use super::{CAPACITY, Piece};
use crate::store::ByteStream;

/// One output of the fan-out.
pub struct Branch {
    pub name: String,
    tx: Option<Sender<std::io::Result<Bytes>>>,
}

/// Makes a branch and the byte stream its store will consume.
pub fn branch(name: &str) -> (Branch, ByteStream) {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(CAPACITY);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed();
    (
        Branch {
            name: name.to_owned(),
            tx: Some(tx),
        },
        stream,
    )
}

/// How the fan-out ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanOutEnd {
    /// Every chunk was handed over and the stream ended cleanly.
    Complete,
    /// The stream before failed; uploads were told to abandon.
    Upstream,
    /// No target was left to take data.
    NoTargets,
}

/// Copies pieces to every branch until the end.
pub async fn fan_out(mut rx: Receiver<Piece>, mut branches: Vec<Branch>) -> FanOutEnd {
    loop {
        match rx.recv().await {
            Some(Piece::Data(chunk)) => {
                for b in branches.iter_mut() {
                    if let Some(tx) = &b.tx
                        && tx.send(Ok(chunk.clone())).await.is_err()
                    {
                        tracing::warn!(target_name = %b.name, "target dropped out of the backup");
                        b.tx = None;
                    }
                }
                if branches.iter().all(|b| b.tx.is_none()) {
                    return FanOutEnd::NoTargets;
                }
            }
            Some(Piece::End) => {
                // Dropping the senders ends each body stream cleanly.
                return FanOutEnd::Complete;
            }
            None => {
                for b in branches.iter_mut() {
                    if let Some(tx) = b.tx.take() {
                        let _ = tx
                            .send(Err(std::io::Error::other(
                                "backup abandoned: an earlier stage failed",
                            )))
                            .await;
                    }
                }
                return FanOutEnd::Upstream;
            }
        }
    }
}
