//! Fan-out: one stream of ciphertext to every target of a backup at once.
//!
//! Each target gets its own bounded channel; a chunk is handed to every live
//! target before the next is read (backpressure: the slowest target sets the
//! pace, memory stays bounded at `CAPACITY` chunks per target). A target whose
//! upload fails, or that takes no data for its stall timeout, drops out; the
//! others go on.
//!
//! A target's body stream ends cleanly only after an explicit end message: if
//! its channel closes any other way (the target was dropped, the fan-out or an
//! earlier stage failed, the task was cancelled), the stream yields an error and
//! the store abandons the object. A truncated stream can never be committed.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc::{self, Receiver, Sender};

use super::{CAPACITY, Piece};
use crate::store::ByteStream;

/// What a branch's channel carries.
enum Msg {
    Data(Bytes),
    /// Every chunk was sent: the object may be committed.
    End,
    /// Abandon the object, with why.
    Fail(String),
}

/// One output of the fan-out.
pub struct Branch {
    pub name: String,
    stall: Duration,
    tx: Option<Sender<Msg>>,
    /// Why the branch dropped out, if it did.
    dropped: Option<String>,
}

/// Makes a branch and the byte stream its store will consume. A branch that
/// accepts no chunk for `stall` is dropped.
pub fn branch(name: &str, stall: Duration) -> (Branch, ByteStream) {
    let (tx, rx) = mpsc::channel::<Msg>(CAPACITY);
    let stream = futures::stream::unfold((rx, false), |(mut rx, done)| async move {
        if done {
            return None;
        }
        match rx.recv().await {
            Some(Msg::Data(b)) => Some((Ok(b), (rx, false))),
            Some(Msg::End) => None,
            Some(Msg::Fail(why)) => Some((Err(std::io::Error::other(why)), (rx, true))),
            None => Some((
                Err(std::io::Error::other(
                    "backup abandoned: the stream stopped before its end",
                )),
                (rx, true),
            )),
        }
    })
    .boxed();
    (
        Branch {
            name: name.to_owned(),
            stall,
            tx: Some(tx),
            dropped: None,
        },
        stream,
    )
}

/// How the fan-out ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FanOutEnd {
    /// Every chunk was handed over and the stream ended cleanly; the targets
    /// that dropped out on the way are listed with why.
    Complete { dropped: Vec<(String, String)> },
    /// The stream before failed; uploads were told to abandon.
    Upstream,
    /// No target was left to take data.
    NoTargets,
}

/// Why a branch that took no data for `stall` was dropped.
fn stalled(stall: Duration) -> String {
    format!(
        "stalled: it took no data for {} s (stall_timeout_secs)",
        stall.as_secs()
    )
}

/// Copies pieces to every branch until the end.
pub async fn fan_out(mut rx: Receiver<Piece>, mut branches: Vec<Branch>) -> FanOutEnd {
    loop {
        match rx.recv().await {
            Some(Piece::Data(chunk)) => {
                for b in branches.iter_mut() {
                    let Some(tx) = &b.tx else { continue };
                    let why = match tokio::time::timeout(b.stall, tx.send(Msg::Data(chunk.clone())))
                        .await
                    {
                        Ok(Ok(())) => continue,
                        Ok(Err(_)) => "its upload failed".to_owned(),
                        Err(_) => stalled(b.stall),
                    };
                    tracing::warn!(target_name = %b.name, reason = %why, "target dropped out of the backup");
                    // Dropping the sender makes the body stream fail when the
                    // store reads it again: the object is abandoned.
                    b.tx = None;
                    b.dropped = Some(why);
                }
                if branches.iter().all(|b| b.tx.is_none()) {
                    return FanOutEnd::NoTargets;
                }
            }
            Some(Piece::End) => {
                for b in branches.iter_mut() {
                    if let Some(tx) = b.tx.take() {
                        // A full channel here is fine to wait on: the store is
                        // still reading; it stalls only if it stops reading.
                        if tokio::time::timeout(b.stall, tx.send(Msg::End))
                            .await
                            .is_err()
                        {
                            b.dropped = Some(stalled(b.stall));
                        }
                    }
                }
                return FanOutEnd::Complete {
                    dropped: branches
                        .into_iter()
                        .filter_map(|b| b.dropped.map(|why| (b.name, why)))
                        .collect(),
                };
            }
            None => {
                for b in branches.iter_mut() {
                    if let Some(tx) = b.tx.take() {
                        // try_send: a stalled target must not hold the failure up;
                        // if its channel is full, closing it fails the stream too.
                        let _ = tx.try_send(Msg::Fail(
                            "backup abandoned: an earlier stage failed".into(),
                        ));
                    }
                }
                return FanOutEnd::Upstream;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn piece(s: &'static str) -> Piece {
        Piece::Data(Bytes::from_static(s.as_bytes()))
    }

    #[tokio::test]
    async fn every_branch_gets_every_chunk_then_a_clean_end() {
        let (tx, rx) = mpsc::channel(4);
        let (a, sa) = branch("a", Duration::from_secs(5));
        let (b, sb) = branch("b", Duration::from_secs(5));
        let fan = tokio::spawn(fan_out(rx, vec![a, b]));
        let ra = tokio::spawn(sa.collect::<Vec<_>>());
        let rb = tokio::spawn(sb.collect::<Vec<_>>());
        tx.send(piece("x")).await.expect("send");
        tx.send(piece("y")).await.expect("send");
        tx.send(Piece::End).await.expect("send");
        assert_eq!(
            fan.await.expect("fan"),
            FanOutEnd::Complete { dropped: vec![] }
        );
        for r in [ra, rb] {
            let items = r.await.expect("collect");
            let data: Vec<Bytes> = items.into_iter().map(|i| i.expect("no error")).collect();
            assert_eq!(
                data,
                vec![Bytes::from_static(b"x"), Bytes::from_static(b"y")]
            );
        }
    }

    #[tokio::test]
    async fn an_upstream_failure_ends_every_stream_with_an_error() {
        let (tx, rx) = mpsc::channel(4);
        let (a, sa) = branch("a", Duration::from_secs(5));
        let fan = tokio::spawn(fan_out(rx, vec![a]));
        let ra = tokio::spawn(sa.collect::<Vec<_>>());
        tx.send(piece("x")).await.expect("send");
        drop(tx);
        assert_eq!(fan.await.expect("fan"), FanOutEnd::Upstream);
        let items = ra.await.expect("collect");
        assert!(
            items.last().expect("items").is_err(),
            "last item is an error"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_branch_is_dropped_and_the_others_complete() {
        let (tx, rx) = mpsc::channel(4);
        let (fast, s_fast) = branch("fast", Duration::from_secs(30));
        // Nobody reads the slow branch: its channel fills up, then it stalls.
        let (slow, s_slow) = branch("slow", Duration::from_secs(30));
        let fan = tokio::spawn(fan_out(rx, vec![fast, slow]));
        let r_fast = tokio::spawn(s_fast.collect::<Vec<_>>());
        let feeder = tokio::spawn(async move {
            for _ in 0..(CAPACITY + 3) {
                tx.send(piece("z")).await.expect("send");
            }
            tx.send(Piece::End).await.expect("send");
        });
        let end = fan.await.expect("fan");
        feeder.await.expect("feeder");
        match end {
            FanOutEnd::Complete { dropped } => {
                assert_eq!(dropped.len(), 1, "{dropped:?}");
                assert_eq!(dropped[0].0, "slow");
                assert!(dropped[0].1.contains("stalled"), "{dropped:?}");
            }
            other => panic!("unexpected end {other:?}"),
        }
        let fast_items = r_fast.await.expect("collect");
        assert_eq!(fast_items.len(), CAPACITY + 3);
        assert!(fast_items.iter().all(Result::is_ok));
        // The stalled branch's stream ends in an error once read: never committed.
        let slow_items: Vec<_> = s_slow.collect().await;
        assert!(slow_items.last().expect("items").is_err());
    }

    #[tokio::test]
    async fn a_dropped_fan_out_never_ends_a_stream_cleanly() {
        let (a, sa) = branch("a", Duration::from_secs(5));
        drop(a);
        let items: Vec<_> = sa.collect().await;
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }
}
