//! A permit of one of a queue's budgets (its slots, or the jobs it holds claimed and
//! unrecorded: see the producer). Shared by the producer, which takes them, and the executor
//! and completer, which give them back; its own module so that neither imports the other.

use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit};

/// A permit of one of a queue's budgets; giving it back wakes the queue's producer.
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    changed: Arc<Notify>,
}

impl Slot {
    pub(crate) fn new(permit: OwnedSemaphorePermit, changed: Arc<Notify>) -> Self {
        Slot {
            permit: Some(permit),
            changed,
        }
    }

    /// Gives many back with one wake-up per queue: a release of many permits at once lets the
    /// producer claim for all of them, where one by one it claimed for the first few and then
    /// again for the rest.
    pub(crate) fn release_all(slots: Vec<Slot>) {
        let mut merged: Vec<(OwnedSemaphorePermit, Arc<Notify>)> = Vec::new();
        for mut slot in slots {
            let Some(permit) = slot.permit.take() else {
                continue;
            };
            match merged
                .iter_mut()
                .find(|(m, _)| Arc::ptr_eq(m.semaphore(), permit.semaphore()))
            {
                Some((m, _)) => m.merge(permit),
                None => merged.push((permit, slot.changed.clone())),
            }
        }
        for (permit, changed) in merged {
            drop(permit);
            changed.notify_one();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.permit.take().is_some() {
            self.changed.notify_one();
        }
    }
}
