//! Group commit, and the way to the spool when PostgreSQL cannot take writes.
//!
//! Requests hand their authenticated callback to [`Ingest::submit`] and wait. A few writer tasks
//! take whatever has queued up (up to `batch_size`, waiting at most `max_wait` for more) and
//! write it as one statement, one transaction; each request is answered after the commit that
//! holds its row. Under load the batches grow by themselves while the previous commit is in
//! flight; an idle system writes a lone callback at once.
//!
//! If PostgreSQL fails, or is not ready yet (see [`crate::database`]), the batch goes to the
//! [`Spool`] instead (fsynced before anyone is answered), and so does everything after it until
//! the drainer has emptied the spool into PostgreSQL, oldest first. Without a spool, or with a
//! full one, the request gets an error and the sender retries. A degraded spool (its file failed
//! and is not reopened yet) is written around: callbacks go straight to PostgreSQL while it
//! takes them, and what waits on disk drains once the file can be read again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex, Notify};
use tokio::task::JoinHandle;

use crate::callback::{Payload, Received};
use crate::database::LiveStore;
use crate::error_chain;
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::spool::{Spool, SpoolError};
use crate::store::{Store, StoreError};

/// How callbacks are grouped into transactions.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Most callbacks in one statement.
    pub batch_size: usize,
    /// How long a writer waits for more callbacks once it has one. Zero: take what is queued.
    pub max_wait: Duration,
    /// Batches written concurrently (each holds one database connection).
    pub writers: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            max_wait: Duration::from_millis(1),
            writers: 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("the database is not ready yet ({0})")]
    NotReady(&'static str),
    #[error("the database is unavailable and the spool is full")]
    SpoolFull,
    #[error("the database is unavailable and the spool failed")]
    Spool(#[source] SpoolError),
    #[error("zegolog is shutting down")]
    ShuttingDown,
}

struct Job {
    received: Received,
    reply: oneshot::Sender<Result<Outcome, Arc<IngestError>>>,
}

/// The handle requests submit through; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingest {
    jobs: mpsc::Sender<Job>,
    spool: Option<Arc<Spool>>,
    live: LiveStore,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

/// The background tasks behind an [`Ingest`]; [`IngestTasks::finish`] waits for them.
#[derive(Debug)]
pub struct IngestTasks {
    writers: Vec<JoinHandle<()>>,
    drainer: Option<(
        JoinHandle<()>,
        Arc<Notify>,
        Arc<std::sync::atomic::AtomicBool>,
    )>,
}

struct Shared {
    live: LiveStore,
    spool: Option<Arc<Spool>>,
    metrics: Arc<Metrics>,
    spooled: Arc<Notify>,
}

impl Ingest {
    /// Starts the writers (and the drainer, with a spool). `live` may not be ready yet:
    /// until it is, callbacks are spooled (or refused without a spool).
    pub fn start(
        live: impl Into<LiveStore>,
        spool: Option<Arc<Spool>>,
        config: BatchConfig,
        metrics: Arc<Metrics>,
    ) -> (Self, IngestTasks) {
        let (jobs, queue) = mpsc::channel(config.batch_size * config.writers.max(1) * 4);
        let queue = Arc::new(Mutex::new(queue));
        let shared = Arc::new(Shared {
            live: live.into(),
            spool: spool.clone(),
            metrics,
            spooled: Arc::new(Notify::new()),
        });
        if let Some(spool) = &spool {
            shared.metrics.spool_status(&spool.status());
            shared.metrics.spool_max_bytes(spool.max_bytes());
        }
        let writers = (0..config.writers.max(1))
            .map(|_| tokio::spawn(write_batches(queue.clone(), shared.clone(), config.clone())))
            .collect();
        let drainer = spool.as_ref().map(|_| {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let handle = tokio::spawn(drain(shared.clone(), config.batch_size, stop.clone()));
            (handle, shared.spooled.clone(), stop)
        });
        let live = shared.live.clone();
        (Self { jobs, spool, live }, IngestTasks { writers, drainer })
    }

    /// Hands a callback over and waits until it is committed ([`Outcome::Spooled`]: or spooled).
    pub async fn submit(&self, received: Received) -> Result<Outcome, Arc<IngestError>> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { received, reply })
            .await
            .map_err(|_| Arc::new(IngestError::ShuttingDown))?;
        answer
            .await
            .unwrap_or_else(|_| Err(Arc::new(IngestError::ShuttingDown)))
    }

    pub fn spool(&self) -> Option<&Spool> {
        self.spool.as_deref()
    }

    pub fn live(&self) -> &LiveStore {
        &self.live
    }
}

impl IngestTasks {
    /// Waits for the writers to answer everything submitted (they stop once every [`Ingest`]
    /// handle is dropped), then gives the drainer up to `drain_for` to empty the spool. What is
    /// still spooled then stays on disk for the next start.
    pub async fn finish(self, drain_for: Duration) {
        for writer in self.writers {
            let _ = writer.await;
        }
        if let Some((mut drainer, wake, stop)) = self.drainer {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            wake.notify_one();
            if tokio::time::timeout(drain_for, &mut drainer).await.is_err() {
                drainer.abort();
                tracing::warn!("stopped before the spool was empty; it drains at the next start");
            }
        }
    }
}

async fn write_batches(
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    shared: Arc<Shared>,
    config: BatchConfig,
) {
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + config.max_wait;
            while batch.len() < config.batch_size {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) if config.max_wait.is_zero() => break,
                    Err(_) => match tokio::time::timeout_at(deadline, queue.recv()).await {
                        Ok(Some(job)) => batch.push(job),
                        Ok(None) | Err(_) => break,
                    },
                }
            }
            batch
        };
        write_batch(&shared, batch).await;
    }
}

async fn write_batch(shared: &Shared, batch: Vec<Job>) {
    let (receiveds, replies): (Vec<Received>, Vec<_>) =
        batch.into_iter().map(|j| (j.received, j.reply)).unzip();
    shared.metrics.batch_size(receiveds.len());
    let result = match (shared.live.store(), &shared.spool) {
        (None, Some(_)) => to_spool(shared, &receiveds).await,
        (None, None) => Err(IngestError::NotReady(shared.live.state().name())),
        (Some(_), Some(spool)) if spool.depth() > 0 && spool.has_room() => {
            // Keep arrival order: nothing overtakes what already waits in the spool, unless
            // the spool cannot take it (then PostgreSQL, while it is up, gets it at once).
            match to_spool(shared, &receiveds).await {
                Ok(outcomes) => Ok(outcomes),
                Err(spool_error) => to_database(shared, &receiveds)
                    .await
                    .map_err(|_| spool_error),
            }
        }
        (Some(_), _) => match to_database(shared, &receiveds).await {
            Err(IngestError::Unavailable(error)) if shared.spool.is_some() => {
                tracing::warn!(error = %error_chain(&error), "database write failed; spooling");
                to_spool(shared, &receiveds).await
            }
            other => other,
        },
    };
    match result {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

async fn to_database(shared: &Shared, receiveds: &[Received]) -> Result<Vec<Outcome>, IngestError> {
    let store = shared
        .live
        .store()
        .ok_or_else(|| IngestError::NotReady(shared.live.state().name()))?;
    let started = Instant::now();
    let outcomes = store.write(receiveds).await.map_err(|error| {
        shared.metrics.write_error("live");
        IngestError::Unavailable(error)
    })?;
    shared.metrics.commit_seconds(started.elapsed());
    for (received, outcome) in receiveds.iter().zip(&outcomes) {
        shared.metrics.callback(&received.event, outcome.code());
        count_logout(shared, received, *outcome);
        count_reuse(shared, store, *outcome, &received.event);
    }
    Ok(outcomes)
}

/// Counts a stored logout by app and reason in `/metrics` (not a duplicate: the counter is what
/// the disconnect-spike alert divides).
fn count_logout(shared: &Shared, received: &Received, outcome: Outcome) {
    if let Payload::Logout(logout) = &received.payload {
        if outcome.is_new() {
            shared.metrics.logout_stored(logout);
        }
    }
}

/// Counts a signature reuse in `/metrics` and logs it.
fn count_reuse(shared: &Shared, store: &Store, outcome: Outcome, event: &str) {
    if let Outcome::SignatureReuse(reuse) = outcome {
        let policy = store.reuse_policy().as_str();
        shared.metrics.signature_reuse(policy, reuse.as_str());
        tracing::warn!(
            event,
            policy,
            action = reuse.as_str(),
            "signature reuse: a signed (timestamp, nonce, signature) came again with another body"
        );
    }
}

async fn to_spool(shared: &Shared, receiveds: &[Received]) -> Result<Vec<Outcome>, IngestError> {
    let spool = shared
        .spool
        .clone()
        .expect("to_spool is called with a spool");
    let count = receiveds.len();
    let owned = receiveds.to_vec();
    let result = tokio::task::spawn_blocking(move || {
        let appended = spool.append(&owned);
        (appended, spool.status())
    })
    .await
    .unwrap_or_else(|e| (Err(SpoolError::Storage(e.to_string())), Default::default()));
    let (appended, status) = result;
    shared.metrics.spool_status(&status);
    match appended {
        Ok(()) => {
            for received in receiveds {
                shared.metrics.callback(&received.event, "spooled");
            }
            shared.spooled.notify_one();
            Ok(vec![Outcome::Spooled; count])
        }
        Err(error) if error.is_full() => {
            tracing::error!(%error, "spool full: refusing callbacks until PostgreSQL is back");
            Err(IngestError::SpoolFull)
        }
        Err(error) => {
            tracing::error!(%error, "spool append failed");
            Err(IngestError::Spool(error))
        }
    }
}

/// Moves spooled callbacks into PostgreSQL, oldest first, retrying with backoff while it is down
/// (or not ready yet) and while the spool cannot be read.
async fn drain(shared: Arc<Shared>, batch_size: usize, stop: Arc<std::sync::atomic::AtomicBool>) {
    let spool = shared.spool.clone().expect("the drainer runs with a spool");
    let mut backoff = Duration::from_millis(100);
    let retry_later = |backoff: &mut Duration| {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(Duration::from_secs(2));
        wait
    };
    loop {
        if spool.depth() == 0 && spool.is_healthy() {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            // Woken by an append or by shutdown; the timeout covers a missed wake-up.
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.spooled.notified()).await;
            continue;
        }
        let Some(store) = shared.live.store() else {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(retry_later(&mut backoff)).await;
            continue;
        };
        let oldest = {
            let spool = spool.clone();
            tokio::task::spawn_blocking(move || (spool.oldest(batch_size), spool.status())).await
        };
        let entries = match oldest {
            Ok((Ok(entries), status)) => {
                shared.metrics.spool_status(&status);
                entries
            }
            Ok((Err(error), status)) => {
                shared.metrics.spool_status(&status);
                tracing::debug!(%error, "reading the spool failed; retrying");
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(retry_later(&mut backoff)).await;
                continue;
            }
            Err(_) => return,
        };
        if entries.is_empty() {
            continue;
        }
        let (keys, receiveds): (Vec<u64>, Vec<Received>) = entries.into_iter().unzip();
        // Their senders were answered 2xx when they were spooled: a signature reuse found now
        // cannot be refused any more, so it is quarantined under `reject`.
        match store.write_acknowledged(&receiveds).await {
            Ok(outcomes) => {
                for (received, outcome) in receiveds.iter().zip(&outcomes) {
                    shared
                        .metrics
                        .callback(&received.event, &format!("drained_{}", outcome.code()));
                    count_logout(&shared, received, *outcome);
                    count_reuse(&shared, store, *outcome, &received.event);
                }
                let spool = spool.clone();
                let removed =
                    tokio::task::spawn_blocking(move || (spool.remove(&keys), spool.status()))
                        .await;
                match removed {
                    Ok((Ok(()), status)) => {
                        shared.metrics.spool_status(&status);
                        if status.entries == 0 {
                            tracing::info!("spool drained into PostgreSQL");
                        }
                    }
                    Ok((Err(error), status)) => {
                        shared.metrics.spool_status(&status);
                        tracing::error!(%error, "removing drained entries failed; they will be written again (harmless)")
                    }
                    Err(_) => return,
                }
                backoff = Duration::from_millis(100);
            }
            Err(error) => {
                shared.metrics.write_error("drain");
                tracing::debug!(error = %error_chain(&error), "spool drain: database still unavailable");
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(retry_later(&mut backoff)).await;
            }
        }
    }
}
