//! The dispatch loop shared by the queues whose rows are their jobs (webhook deliveries,
//! paid lines, outbox emails; see `kassa_store::Queue`): claim due rows in batches, hand
//! each to its worker within a bound of rows in flight, keep the batches' claims alive
//! while they are in this node's hands, and look for work again when rows are written.
//!
//! A batch's claim lasts three heartbeats and is extended every heartbeat while any of
//! its rows is in flight; a node that dies stops extending, and its rows go back to the
//! queue (at least once). The loop looks for work when a due row is written (this
//! process's writes; on PostgreSQL every node's, by NOTIFY on the queue's channel),
//! when a worker asks ([`Dispatch::wake`]), and otherwise when the next pending row is
//! due, at least every [`IDLE_MAX`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kassa_store::{Queue, Store, StoreError, Timestamp};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

/// The longest an idle dispatcher waits before it looks again.
const IDLE_MAX: Duration = Duration::from_secs(5);
/// The shortest wait when a look found nothing, so a race never spins.
const IDLE_MIN: Duration = Duration::from_millis(20);
/// Heartbeats a claim outlives.
const CLAIM_HEARTBEATS: u32 = 3;
/// How long rows still in flight at shutdown are waited for.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

/// Claims in this node's hands: each batch's name and its rows not finished yet.
type Claims = Arc<Mutex<HashMap<Arc<str>, usize>>>;

/// Groups of rows this node holds back for now (webhook endpoints at their in-flight
/// cap): its claims and its idle wait leave their rows out, and whoever frees room in
/// one takes it out and wakes the dispatcher.
pub(crate) type HeldBack = Arc<Mutex<std::collections::HashSet<String>>>;

/// A claimed row in a worker's hands: its slot, and its share of its batch's claim,
/// both given back when it is dropped (once the row's outcome is recorded).
pub(crate) struct Taken {
    claim: Arc<str>,
    claims: Claims,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Taken {
    fn drop(&mut self) {
        let mut claims = self.claims.lock().expect("claims lock");
        if let Some(left) = claims.get_mut(&self.claim) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                claims.remove(&self.claim);
            }
        }
    }
}

/// One queue's dispatcher: which queue, how many rows it claims at once and how many
/// it keeps in flight.
pub(crate) struct Dispatch {
    pub(crate) queue: Queue,
    pub(crate) batch: usize,
    pub(crate) in_flight: usize,
    /// Notified to look for work again (a retry recorded may be due sooner).
    pub(crate) wake: Arc<Notify>,
    /// Groups whose rows wait for room ([`HeldBack`]); none for most queues.
    pub(crate) held_back: HeldBack,
}

impl Dispatch {
    pub(crate) fn new(queue: Queue, batch: usize, in_flight: usize) -> Self {
        Self {
            queue,
            batch: batch.max(1),
            in_flight: in_flight.max(1),
            wake: Arc::new(Notify::new()),
            held_back: HeldBack::default(),
        }
    }

    /// Claims due rows with `claim(store, name, limit, lease)` and hands each to `work` with
    /// its [`Taken`] (which `work` keeps until the row is finished) until `stop` says
    /// so (or its sender goes); then waits for the rows in flight, up to 30 s.
    pub(crate) async fn run<T, C, F, W>(
        self,
        store: Store,
        heartbeat: Duration,
        mut stop: watch::Receiver<bool>,
        mut claim: C,
        mut work: W,
    ) where
        C: FnMut(Store, Arc<str>, usize, Duration) -> F,
        F: Future<Output = Result<Vec<T>, StoreError>>,
        W: FnMut(T, Taken),
    {
        let queue = self.queue;
        let lease = heartbeat * CLAIM_HEARTBEATS;
        let wake = self.wake.clone();
        let claims: Claims = Arc::default();
        let slots = Arc::new(Semaphore::new(self.in_flight));
        let helpers = [
            tokio::spawn(woken_by_writes(queue, wake.clone())),
            tokio::spawn(woken_by_notify(store.clone(), queue, wake.clone())),
            tokio::spawn(extend_claims(
                store.clone(),
                queue,
                claims.clone(),
                heartbeat,
                lease,
            )),
        ];
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                break;
            }
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("the slots are never closed"),
                _ = stop.changed() => break,
            };
            let limit = (slots.available_permits() + 1).min(self.batch);
            let name: Arc<str> = Arc::from(format!("clm_{}", ulid::Ulid::new()));
            let due = match claim(store.clone(), name.clone(), limit, lease).await {
                Ok(due) => {
                    failures = 0;
                    due
                }
                Err(e) => {
                    drop(slot);
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, queue = queue.name(), "claiming due rows");
                    let wait = IDLE_MIN * 2u32.saturating_pow(failures.min(8));
                    tokio::select! {
                        () = tokio::time::sleep(wait.min(IDLE_MAX)) => {}
                        _ = stop.changed() => break,
                    }
                    continue;
                }
            };
            if due.is_empty() {
                drop(slot);
                let wait = idle_wait(&store, queue, &self.held_back).await;
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = wake.notified() => {}
                    _ = stop.changed() => break,
                }
                continue;
            }
            claims
                .lock()
                .expect("claims lock")
                .insert(name.clone(), due.len());
            let mut slot = Some(slot);
            for row in due {
                let slot = match slot.take() {
                    Some(s) => s,
                    // Free: the claim took no more than the free slots, and only this
                    // loop takes them.
                    None => slots
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("the slots are never closed"),
                };
                let taken = Taken {
                    claim: name.clone(),
                    claims: claims.clone(),
                    _slot: slot,
                };
                work(row, taken);
            }
        }
        // No more claims; the rows in flight finish (their claims extended meanwhile).
        let all = u32::try_from(self.in_flight).unwrap_or(u32::MAX);
        if tokio::time::timeout(SHUTDOWN_WAIT, slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                queue = queue.name(),
                "rows still in flight at shutdown are worked again later"
            );
        }
        for helper in helpers {
            helper.abort();
        }
    }
}

/// Writes outcomes as they come, many at once, until no worker sends more; a batch's
/// items (and the rows they hold, [`Taken`]) are dropped once written, and the
/// dispatcher looks again when the write says so (a retry may be due sooner than the
/// dispatcher's idle wait).
pub(crate) struct Recorder<T> {
    /// Where workers send their outcomes.
    pub(crate) outcomes: mpsc::UnboundedSender<T>,
    task: JoinHandle<()>,
}

impl<T: Send + 'static> Recorder<T> {
    /// Writes up to `max` outcomes at a time with `write`, waking `wake` after those
    /// writes that return true.
    pub(crate) fn spawn<W, F>(max: usize, wake: Arc<Notify>, mut write: W) -> Self
    where
        W: FnMut(Vec<T>) -> F + Send + 'static,
        F: Future<Output = bool> + Send,
    {
        let (outcomes, mut sent) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max);
            while sent.recv_many(&mut batch, max).await > 0 {
                if write(std::mem::replace(&mut batch, Vec::with_capacity(max))).await {
                    wake.notify_one();
                }
            }
        });
        Self { outcomes, task }
    }

    /// Once the dispatcher stopped: waits (up to 30 s) for the outcomes in flight to
    /// be written. Those not written are worked again once their claims run out.
    pub(crate) async fn finish(self, queue: Queue) {
        drop(self.outcomes);
        if tokio::time::timeout(SHUTDOWN_WAIT, self.task)
            .await
            .is_err()
        {
            tracing::warn!(
                queue = queue.name(),
                "outcomes still in flight at shutdown are worked again later"
            );
        }
    }
}

/// How long to wait when nothing was due: until the next pending row's time (or a
/// claim's end), within [`IDLE_MIN`]..[`IDLE_MAX`]; rows held back do not count (room
/// made for them wakes the dispatcher).
async fn idle_wait(store: &Store, queue: Queue, held_back: &HeldBack) -> Duration {
    let skip: Vec<String> = held_back
        .lock()
        .expect("held back lock")
        .iter()
        .cloned()
        .collect();
    match store.next_due_at_skipping(queue, &skip).await {
        Ok(Some(at)) => {
            let ms = u64::try_from(at.millis() - Timestamp::now().millis()).unwrap_or(0);
            Duration::from_millis(ms).clamp(IDLE_MIN, IDLE_MAX)
        }
        Ok(None) => IDLE_MAX,
        Err(e) => {
            tracing::warn!(error = %e, queue = queue.name(), "reading when the next row is due");
            IDLE_MAX
        }
    }
}

/// Extends the claims in this node's hands every heartbeat.
async fn extend_claims(
    store: Store,
    queue: Queue,
    claims: Claims,
    every: Duration,
    lease: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let names: Vec<String> = claims
            .lock()
            .expect("claims lock")
            .keys()
            .map(|c| c.to_string())
            .collect();
        if let Err(e) = store.extend_claims(queue, &names, lease).await {
            tracing::warn!(error = %e, queue = queue.name(), "extending claims");
        }
    }
}

/// Wakes the dispatcher when this process writes a due row.
async fn woken_by_writes(queue: Queue, wake: Arc<Notify>) {
    let mut written = kassa_store::written_here(queue);
    while written.changed().await.is_ok() {
        wake.notify_one();
    }
}

/// On PostgreSQL, wakes the dispatcher when any node writes a due row (a NOTIFY on the
/// queue's channel, at the commit), listening again after the connection is lost.
async fn woken_by_notify(store: Store, queue: Queue, wake: Arc<Notify>) {
    let Some(pool) = store.pg_pool().cloned() else {
        return;
    };
    while !pool.is_closed() {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(queue.channel()).await.is_ok() {
                    // Rows written while nobody listened.
                    wake.notify_one();
                    while listener.recv().await.is_ok() {
                        wake.notify_one();
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, queue = queue.name(), "listening for due rows"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
