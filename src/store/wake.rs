//! In-process wake-ups for producers: an insert (seen in this process, through LISTEN/NOTIFY,
//! or through SQLite's `data_version`) wakes the producers of its queue at once instead of
//! leaving them to their poll interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// The queue name that wakes every subscriber.
pub const ALL_QUEUES: &str = "*";

/// Subscribers by queue.
#[derive(Debug, Default)]
pub struct Wakeup {
    subscribers: Mutex<Vec<(String, Weak<Notify>)>>,
    /// Cancel requests heard of for every worker (`"*"`: a listener that reconnected, a
    /// watcher's failed read), and by worker (see [`Wakeup::cancel_wakeups`]).
    cancels_all: AtomicU64,
    cancels: Mutex<std::collections::HashMap<String, u64>>,
}

/// One producer's subscription; dropping it unsubscribes.
#[derive(Debug)]
pub struct WakeupSubscription {
    notify: Arc<Notify>,
}

impl WakeupSubscription {
    /// Waits for the next wake-up (a wake-up sent while nobody waited is kept, so none is lost).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// Takes a wake-up sent since the last one was taken, without waiting; whether there was
    /// one.
    pub fn take(&self) -> bool {
        use futures::FutureExt;
        self.notify.notified().now_or_never().is_some()
    }
}

impl Wakeup {
    /// Subscribes to one queue's wake-ups.
    pub fn subscribe(&self, queue: &str) -> WakeupSubscription {
        let notify = Arc::new(Notify::new());
        let mut subs = self.subscribers.lock().unwrap();
        subs.retain(|(_, w)| w.strong_count() > 0);
        subs.push((queue.to_string(), Arc::downgrade(&notify)));
        WakeupSubscription { notify }
    }

    /// Wakes the subscribers of `queue` (or, for the reserved name `ALL_QUEUES`, every
    /// subscriber but those to queues' pauses and limits: see [`Wakeup::notify_control`]).
    pub fn notify(&self, queue: &str) {
        let subs = self.subscribers.lock().unwrap();
        for (q, w) in subs.iter() {
            if (queue == ALL_QUEUES && !q.starts_with(CONTROL_PREFIX)) || q == queue {
                if let Some(n) = w.upgrade() {
                    n.notify_one();
                }
            }
        }
    }

    /// Subscribes to the cancel requests for the running jobs of one worker.
    pub fn subscribe_cancel(&self, worker_id: &str) -> WakeupSubscription {
        self.subscribe(&cancel_key(worker_id))
    }

    /// Wakes the cancel subscription of one worker (or every subscriber for `"*"`).
    pub fn notify_cancel(&self, worker_id: &str) {
        if worker_id == ALL_QUEUES {
            self.cancels_all.fetch_add(1, Ordering::SeqCst);
            self.notify(ALL_QUEUES)
        } else {
            let key = cancel_key(worker_id);
            // Counted only for this process's own workers: NOTIFY tells every process of every
            // worker's requests, and a count kept per worker id ever heard of would grow
            // with every worker that ever ran.
            let here = self
                .subscribers
                .lock()
                .unwrap()
                .iter()
                .any(|(q, w)| *q == key && w.strong_count() > 0);
            if here {
                *self
                    .cancels
                    .lock()
                    .unwrap()
                    .entry(worker_id.to_string())
                    .or_default() += 1;
            }
            self.notify(&key)
        }
    }

    /// How many times this store heard of cancel requests for the jobs of `worker_id`, or of
    /// every worker's ([`Wakeup::notify_cancel`]: the store's own cancels, NOTIFY
    /// `porter_cancel` on PostgreSQL, a worker's count of requests moving on SQLite). Counted
    /// before anyone is woken: a job about to start that was claimed when the count was lower
    /// asks whether it was cancelled meanwhile, rather than rely on its worker's last look.
    pub fn cancel_wakeups(&self, worker_id: &str) -> u64 {
        let own = self
            .cancels
            .lock()
            .unwrap()
            .get(worker_id)
            .copied()
            .unwrap_or(0);
        self.cancels_all.load(Ordering::SeqCst) + own
    }

    /// Subscribes to one queue's pauses and limit changes.
    pub fn subscribe_control(&self, queue: &str) -> WakeupSubscription {
        self.subscribe(&format!("{CONTROL_PREFIX}{queue}"))
    }

    /// Tells the subscribers of `queue` (every queue for `"*"`) that it was paused or
    /// given other limits. Not sent by [`Wakeup::notify`]`("*")`, which
    /// SQLite's change watcher sends for every commit of another connection.
    pub fn notify_control(&self, queue: &str) {
        let subs = self.subscribers.lock().unwrap();
        for (q, w) in subs.iter() {
            let Some(name) = q.strip_prefix(CONTROL_PREFIX) else {
                continue;
            };
            if queue == ALL_QUEUES || name == queue {
                if let Some(n) = w.upgrade() {
                    n.notify_one();
                }
            }
        }
    }

    /// Whether anybody listens (lets the SQLite change watcher idle when nobody does).
    pub fn has_subscribers(&self) -> bool {
        self.subscribers
            .lock()
            .unwrap()
            .iter()
            .any(|(_, w)| w.strong_count() > 0)
    }
}

/// The prefix of the subscription keys of queues' pauses and limits. Queue names cannot
/// contain a colon, so no queue's own key starts with it.
const CONTROL_PREFIX: &str = "control:";

/// The subscription key of a worker's cancel requests. Queue names cannot contain a colon, so
/// it never wakes a queue's producers (and [`ALL_QUEUES`] wakes it too).
fn cancel_key(worker_id: &str) -> String {
    format!("cancel:{worker_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cancel news is counted for this process's own workers only, and every worker's for
    /// `"*"`: a count kept for every worker id a NOTIFY named grew with every worker that
    /// ever ran anywhere (review of 6 Dec).
    #[test]
    fn cancel_news_is_counted_for_the_workers_subscribed_here() {
        let w = Wakeup::default();
        let _mine = w.subscribe_cancel("mine");
        w.notify_cancel("elsewhere");
        w.notify_cancel("mine");
        assert_eq!(w.cancel_wakeups("mine"), 1);
        assert_eq!(w.cancel_wakeups("elsewhere"), 0);
        assert!(!w.cancels.lock().unwrap().contains_key("elsewhere"));
        w.notify_cancel(ALL_QUEUES);
        assert_eq!(
            (w.cancel_wakeups("mine"), w.cancel_wakeups("elsewhere")),
            (2, 1)
        );
    }
}
