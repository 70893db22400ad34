//! A connection's queue of frames waiting to be written: bounded, filled by the hub and the
//! connection's own replies, drained by the connection's task. Unlike a channel it holds no
//! allocation while empty, and most connections are idle most of the time.

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;

/// Past this many slots, an emptied queue gives its memory back.
const KEEP_SLOTS: usize = 64;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds its capacity: the reader is too slow.
    Full,
    /// The connection is gone.
    Closed,
}

pub struct Outbox {
    state: Mutex<State>,
    capacity: usize,
    /// A frame was queued (one waiter: the connection's task).
    readable: Notify,
    /// A frame was taken (one waiter: the connection's own reply waiting for room).
    writable: Notify,
}

struct State {
    frames: VecDeque<Utf8Bytes>,
    closed: bool,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State { frames: VecDeque::new(), closed: false }),
            capacity,
            readable: Notify::new(),
            writable: Notify::new(),
        }
    }

    /// Queues a frame unless the queue is full or closed.
    pub fn try_push(&self, frame: Utf8Bytes) -> Result<(), Refused> {
        self.push_or_return(frame).map_err(|(why, _)| why)
    }

    fn push_or_return(&self, frame: Utf8Bytes) -> Result<(), (Refused, Utf8Bytes)> {
        {
            let mut state = self.state.lock();
            if state.closed {
                return Err((Refused::Closed, frame));
            }
            if state.frames.len() >= self.capacity {
                return Err((Refused::Full, frame));
            }
            state.frames.push_back(frame);
        }
        self.readable.notify_one();
        Ok(())
    }

    /// Queues a frame, waiting for room; false if the queue closed first.
    pub async fn push(&self, mut frame: Utf8Bytes) -> bool {
        loop {
            match self.push_or_return(frame) {
                Ok(()) => return true,
                Err((Refused::Closed, _)) => return false,
                // `notify_one` keeps a permit when nobody waits, so a pop between the check and
                // the wait is not missed.
                Err((Refused::Full, back)) => {
                    frame = back;
                    self.writable.notified().await;
                }
            }
        }
    }

    /// Takes the oldest frame.
    pub fn pop(&self) -> Option<Utf8Bytes> {
        let frame = {
            let mut state = self.state.lock();
            let frame = state.frames.pop_front();
            if state.frames.is_empty() && state.frames.capacity() > KEEP_SLOTS {
                state.frames = VecDeque::new();
            }
            frame
        };
        if frame.is_some() {
            self.writable.notify_one();
        }
        frame
    }

    /// Resolves once a frame is queued (at once if one is).
    pub async fn ready(&self) {
        loop {
            if !self.state.lock().frames.is_empty() {
                return;
            }
            self.readable.notified().await;
        }
    }

    /// Refuses frames from now on and drops those queued.
    pub fn close(&self) {
        let dropped = {
            let mut state = self.state.lock();
            state.closed = true;
            std::mem::take(&mut state.frames)
        };
        drop(dropped);
        self.writable.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn frame(n: usize) -> Utf8Bytes {
        Utf8Bytes::from(n.to_string())
    }

    #[test]
    fn bounded_fifo_that_refuses_when_full_or_closed() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.try_push(frame(1)), Ok(()));
        assert_eq!(outbox.try_push(frame(2)), Ok(()));
        assert_eq!(outbox.try_push(frame(3)), Err(Refused::Full));
        assert_eq!(outbox.pop().as_deref(), Some("1"));
        assert_eq!(outbox.try_push(frame(3)), Ok(()));
        assert_eq!(outbox.pop().as_deref(), Some("2"));
        assert_eq!(outbox.pop().as_deref(), Some("3"));
        assert_eq!(outbox.pop(), None);
        outbox.close();
        assert_eq!(outbox.try_push(frame(4)), Err(Refused::Closed));
    }

    #[test]
    fn an_emptied_queue_gives_back_a_large_buffer() {
        let outbox = Outbox::new(1000);
        for n in 0..500 {
            assert_eq!(outbox.try_push(frame(n)), Ok(()));
        }
        while outbox.pop().is_some() {}
        assert_eq!(outbox.state.lock().frames.capacity(), 0);
    }

    #[tokio::test]
    async fn push_waits_for_room_and_ready_wakes_the_reader() {
        let outbox = Arc::new(Outbox::new(1));
        assert_eq!(outbox.try_push(frame(1)), Ok(()));
        let writer = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.push(frame(2)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!writer.is_finished(), "push must wait while the queue is full");
        outbox.ready().await;
        assert_eq!(outbox.pop().as_deref(), Some("1"));
        assert!(writer.await.unwrap_or(false));
        tokio::time::timeout(Duration::from_secs(1), outbox.ready()).await.expect("a queued frame is ready");
        assert_eq!(outbox.pop().as_deref(), Some("2"));
        let closed = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                outbox.try_push(frame(3)).ok();
                outbox.push(frame(4)).await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        outbox.close();
        assert!(!closed.await.unwrap_or(true), "a push waiting on a closed queue gives up");
    }
}
