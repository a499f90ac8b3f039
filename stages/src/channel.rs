//! Bounded, metered channels between stages.
//!
//! Every channel is bounded in *items* even though it carries batches: a
//! batch of N records counts N against the capacity. Each channel knows its
//! depth, its capacity and the time its senders spent blocked, so the
//! slowest stage is visible without a profiler (the sender upstream of a slow
//! stage blocks; the receiver downstream of it starves).
//!
//! Implemented on flume because one end is often async (fetch on tokio) and
//! the other a plain thread (the CPU stages); flume's bounded channel serves
//! both without a bridge task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Something that occupies room in a channel: a batch counts its items.
pub trait Weighted {
    fn weight(&self) -> usize;
}

impl<T> Weighted for Vec<T> {
    fn weight(&self) -> usize {
        self.len().max(1)
    }
}

/// A batch shared by several channels (one per sink) weighs what it holds.
impl<T: Weighted + ?Sized> Weighted for Arc<T> {
    fn weight(&self) -> usize {
        (**self).weight()
    }
}

/// Counters of one channel, shared by all its ends.
#[derive(Debug)]
pub struct ChannelStats {
    pub name: &'static str,
    /// Capacity in items.
    pub capacity: u64,
    queued_items: AtomicU64,
    sent_items: AtomicU64,
    sent_batches: AtomicU64,
    blocked_nanos: AtomicU64,
}

impl ChannelStats {
    pub fn queued_items(&self) -> u64 {
        self.queued_items.load(Ordering::Relaxed)
    }
    pub fn sent_items(&self) -> u64 {
        self.sent_items.load(Ordering::Relaxed)
    }
    pub fn sent_batches(&self) -> u64 {
        self.sent_batches.load(Ordering::Relaxed)
    }
    /// Seconds senders spent waiting for room.
    pub fn blocked_seconds(&self) -> f64 {
        self.blocked_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// Sending end. Cloneable: several workers may feed one channel.
pub struct Sender<T> {
    inner: flume::Sender<T>,
    room: Arc<Room>,
    stats: Arc<ChannelStats>,
}

/// Receiving end. Cloneable: several workers may drain one channel.
pub struct Receiver<T> {
    inner: flume::Receiver<T>,
    room: Arc<Room>,
    stats: Arc<ChannelStats>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            inner: self.inner.clone(),
            room: self.room.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver {
            inner: self.inner.clone(),
            room: self.room.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The receiving side went away: downstream stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("channel closed: the downstream stage stopped")]
pub struct Closed;

/// Item-count admission: a semaphore of `capacity` permits in items, shared
/// by sync and async senders. A batch larger than the capacity is admitted
/// alone when the channel is empty, so an oversized batch can never deadlock.
struct Room {
    sem: tokio::sync::Semaphore,
    capacity: usize,
}

impl Room {
    fn permits_for(&self, weight: usize) -> u32 {
        weight.min(self.capacity).max(1) as u32
    }
}

/// A bounded channel holding at most `capacity_items` items (summed batch weights).
pub fn bounded<T: Weighted>(name: &'static str, capacity_items: usize) -> (Sender<T>, Receiver<T>) {
    let capacity = capacity_items.max(1);
    // The flume queue itself is unbounded: admission is done in items by `Room`.
    let (tx, rx) = flume::unbounded();
    let room = Arc::new(Room {
        sem: tokio::sync::Semaphore::new(capacity),
        capacity,
    });
    let stats = Arc::new(ChannelStats {
        name,
        capacity: capacity as u64,
        queued_items: AtomicU64::new(0),
        sent_items: AtomicU64::new(0),
        sent_batches: AtomicU64::new(0),
        blocked_nanos: AtomicU64::new(0),
    });
    (
        Sender {
            inner: tx,
            room: room.clone(),
            stats: stats.clone(),
        },
        Receiver {
            inner: rx,
            room,
            stats,
        },
    )
}

impl<T: Weighted> Sender<T> {
    pub fn stats(&self) -> &Arc<ChannelStats> {
        &self.stats
    }

    /// Send from a thread, blocking while the channel is full.
    pub fn send_blocking(&self, item: T) -> Result<(), Closed> {
        let n = self.room.permits_for(item.weight());
        match self.room.sem.try_acquire_many(n) {
            Ok(p) => p.forget(),
            Err(_) => {
                let t = Instant::now();
                let handle = tokio::runtime::Handle::try_current();
                let acquired = match handle {
                    // Never park a runtime worker thread on a semaphore.
                    Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                        tokio::task::block_in_place(|| {
                            futures_block_on(self.room.sem.acquire_many(n))
                        })
                    }
                    _ => futures_block_on(self.room.sem.acquire_many(n)),
                };
                self.add_blocked(t);
                match acquired {
                    Ok(p) => p.forget(),
                    Err(_) => return Err(Closed),
                }
            }
        }
        self.push(item, n)
    }

    /// Send from async code, waiting (not blocking the thread) while full.
    pub async fn send_async(&self, item: T) -> Result<(), Closed> {
        let n = self.room.permits_for(item.weight());
        match self.room.sem.try_acquire_many(n) {
            Ok(p) => p.forget(),
            Err(_) => {
                let t = Instant::now();
                let acquired = self.room.sem.acquire_many(n).await;
                self.add_blocked(t);
                match acquired {
                    Ok(p) => p.forget(),
                    Err(_) => return Err(Closed),
                }
            }
        }
        self.push(item, n)
    }

    fn push(&self, item: T, permits: u32) -> Result<(), Closed> {
        let weight = item.weight() as u64;
        self.stats
            .queued_items
            .fetch_add(permits as u64, Ordering::Relaxed);
        if self.inner.send(item).is_err() {
            self.stats
                .queued_items
                .fetch_sub(permits as u64, Ordering::Relaxed);
            self.room.sem.add_permits(permits as usize);
            return Err(Closed);
        }
        self.stats.sent_items.fetch_add(weight, Ordering::Relaxed);
        self.stats.sent_batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn add_blocked(&self, since: Instant) {
        self.stats
            .blocked_nanos
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

impl<T: Weighted> Receiver<T> {
    pub fn stats(&self) -> &Arc<ChannelStats> {
        &self.stats
    }

    /// Receive on a thread; `None` once every sender is gone and the queue is empty.
    pub fn recv_blocking(&self) -> Option<T> {
        let item = self.inner.recv().ok()?;
        self.release(&item);
        Some(item)
    }

    /// Receive from async code.
    pub async fn recv_async(&self) -> Option<T> {
        let item = self.inner.recv_async().await.ok()?;
        self.release(&item);
        Some(item)
    }

    fn release(&self, item: &T) {
        let n = self.room.permits_for(item.weight());
        self.stats
            .queued_items
            .fetch_sub(n as u64, Ordering::Relaxed);
        self.room.sem.add_permits(n as usize);
    }

    /// Stop accepting: wakes blocked senders with [`Closed`]. Used when a
    /// downstream stage fails, so upstream never hangs on a full channel.
    pub fn close(&self) {
        self.room.sem.close();
    }
}

/// Minimal block_on for a semaphore future from a non-async thread.
fn futures_block_on<F: std::future::Future>(fut: F) -> F::Output {
    // A current-thread runtime per blocking wait would be heavy; a parked
    // thread woken by the future's waker is all a semaphore needs.
    use std::task::{Context, Poll, Wake, Waker};
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_in_items_not_batches() {
        let (tx, rx) = bounded::<Vec<u32>>("t", 10);
        tx.send_blocking(vec![1; 6]).unwrap();
        tx.send_blocking(vec![2; 4]).unwrap();
        assert_eq!(tx.stats().queued_items(), 10);
        let tx2 = tx.clone();
        let h = std::thread::spawn(move || tx2.send_blocking(vec![3; 3]));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!h.is_finished(), "third batch must wait for room");
        assert_eq!(rx.recv_blocking().unwrap().len(), 6);
        h.join().unwrap().unwrap();
        assert_eq!(tx.stats().queued_items(), 7);
        assert!(tx.stats().blocked_seconds() > 0.05);
        assert_eq!(tx.stats().sent_items(), 13);
        assert_eq!(tx.stats().sent_batches(), 3);
    }

    #[test]
    fn oversized_batch_passes_alone() {
        let (tx, rx) = bounded::<Vec<u8>>("t", 4);
        tx.send_blocking(vec![0; 100]).unwrap();
        assert_eq!(rx.recv_blocking().unwrap().len(), 100);
        assert_eq!(rx.stats().queued_items(), 0);
    }

    #[test]
    fn close_wakes_blocked_sender() {
        let (tx, rx) = bounded::<Vec<u8>>("t", 1);
        tx.send_blocking(vec![0]).unwrap();
        let h = std::thread::spawn(move || tx.send_blocking(vec![1]));
        std::thread::sleep(Duration::from_millis(50));
        rx.close();
        assert_eq!(h.join().unwrap(), Err(Closed));
    }

    #[test]
    fn ends_when_senders_drop() {
        let (tx, rx) = bounded::<Vec<u8>>("t", 8);
        tx.send_blocking(vec![1]).unwrap();
        drop(tx);
        assert_eq!(rx.recv_blocking(), Some(vec![1]));
        assert_eq!(rx.recv_blocking(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_sender_thread_receiver() {
        let (tx, rx) = bounded::<Vec<u64>>("t", 3);
        let consumer = std::thread::spawn(move || {
            let mut sum = 0;
            while let Some(b) = rx.recv_blocking() {
                sum += b.iter().sum::<u64>();
            }
            sum
        });
        for i in 0..100u64 {
            tx.send_async(vec![i, i]).await.unwrap();
        }
        drop(tx);
        assert_eq!(consumer.join().unwrap(), 9900);
    }
}
