//! The durable local spool: where authenticated callbacks wait while PostgreSQL cannot take them.
//!
//! An embedded [redb](https://docs.rs/redb) database under the data dir, one entry per callback,
//! keyed by an increasing sequence number so that draining keeps arrival order. Every append is
//! a redb transaction committed with `Durability::Immediate` (fsync) before the sender is told
//! 2xx. Draining writes a run of entries to PostgreSQL (idempotently) and only then removes them:
//! a crash in between drains them again, and PostgreSQL's unique keys make that harmless.
//!
//! The spool is bounded twice: in bytes of callbacks (`max_bytes`), and by the free space it
//! leaves on its filesystem (`min_free_bytes`). A spool at either bound refuses appends so that
//! the sender retries later, before the disk is full.
//!
//! A spool survives its disk: after any storage error (a full disk, an I/O error; redb then
//! refuses every call until it is reopened) the file is closed, the spool is *degraded*, and the
//! next call reopens it (at most once a second) and counts what it holds again. While degraded,
//! callers see [`SpoolError::Degraded`] at once and write around it. Nothing here needs a restart.
//!
//! Calls block on disk I/O: async callers run them on the blocking pool.
//!
//! # The file
//! Table `callbacks` maps the sequence number (`u64`) to one entry (bytes); table
//! `undecodable` holds, under the same keys, the entries that could not be read back.
//!
//! # The record
//! An entry is a record of its own (`SpoolRecord`, in `src/spool/record.rs`), not the domain type
//! [`Received`]: a spool outlives the zegolog that wrote it (an upgrade drains what the old
//! version spooled), so what an entry holds is versioned and changes only with a new version.
//! Every version ever written stays readable; writing always uses the newest.
//!
//! - **Version 1** (written now): a JSON object whose first key is `"version":1`, then `event`,
//!   `appid`, `digest` (64 lower-case hex digits), `body` (the archived body, the text of a JSON
//!   object, as a string), `encoding` (`"json"` or `"form"`), `payload` (`{"logout":{..}}`,
//!   `{"login":{..}}`, `{"room":{..}}` holding the typed event's own serialised fields,
//!   `"other"`, or `{"unusable":"reason"}`) and `signed` (`{"timestamp","nonce","signature"}`, or
//!   `null` for a callback nobody signed).
//! - **Version 0** (unversioned; written by every zegolog before version 1): `serde_json` of the
//!   `Received` of that time: no `version` key, `digest` as 32 numbers, `encoding` `"Json"` or
//!   `"Form"`, `payload` `{"Logout":{..}}`, `{"Login":{..}}`, `{"Room":{..}}`, `"Other"` or
//!   `{"Refused":"reason"}`, and `signed` as in version 1, or missing in entries spooled before
//!   the signature ledger existed. Examples in `tests/fixtures/spool-v0/`.
//!
//! An entry of an unknown version (written by a newer zegolog, then downgraded) or one that does
//! not decode is set aside in `undecodable`, with an error in the log naming its version, and
//! the entries behind it drain on.

mod record;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redb::{Database, ReadableTableMetadata, TableDefinition};

use crate::callback::Received;

const CALLBACKS: TableDefinition<u64, &[u8]> = TableDefinition::new("callbacks");
/// Entries that could not be decoded, set aside so that they do not block the ones behind them.
const UNDECODABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("undecodable");

/// How often a degraded spool tries to reopen its file.
const REOPEN_EVERY: Duration = Duration::from_secs(1);
/// How long after a storage error the spool says it has no room, so that callbacks go straight
/// to PostgreSQL while it is up rather than break the file again.
const QUIET_AFTER_ERROR: Duration = Duration::from_secs(10);
/// Room `has_room` asks for: a batch of a few dozen typical callbacks (each under 2 KiB).
const ROOM_FOR_A_BATCH: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full ({bytes} of {max_bytes} bytes)")]
    Full { bytes: u64, max_bytes: u64 },
    #[error("the spool's filesystem has {free_bytes} bytes free, and the spool leaves at least {min_free_bytes}")]
    DiskLow {
        free_bytes: u64,
        min_free_bytes: u64,
    },
    #[error("spool storage error: {0}")]
    Storage(String),
    #[error("the spool is degraded after a storage error and not reopened yet: {0}")]
    Degraded(String),
    /// Only on the way in: an entry that cannot be read back is set aside instead (see
    /// [`Spool::oldest`]).
    #[error("a callback could not be encoded as a spool record: {0}")]
    Encode(#[from] serde_json::Error),
}

impl SpoolError {
    /// The spool refused for want of room, not because it failed.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full { .. } | Self::DiskLow { .. })
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for SpoolError {
            fn from(e: $t) -> Self {
                Self::Storage(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

#[derive(Debug, Default, Clone, Copy)]
struct Level {
    next_seq: u64,
    entries: u64,
    bytes: u64,
}

/// The bounds of a spool.
#[derive(Debug, Clone, Copy)]
pub struct SpoolLimits {
    /// Most bytes of callbacks held.
    pub max_bytes: u64,
    /// Least free space left on the spool's filesystem; 0: no floor.
    pub min_free_bytes: u64,
}

/// What the spool is like now, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStatus {
    pub entries: u64,
    pub bytes: u64,
    /// Why the spool is degraded; `None` while it is healthy.
    pub fault: Option<String>,
    /// Reopened after a storage error only moments ago: appends wait a little longer.
    pub recovering: bool,
}

/// The spool file and what it holds.
pub struct Spool {
    path: PathBuf,
    limits: SpoolLimits,
    state: Mutex<State>,
}

struct State {
    /// `None` while degraded: closed after an error, to be reopened.
    db: Option<Database>,
    /// What waits to be drained: the entries after `drained_through`.
    level: Level,
    fault: Option<String>,
    last_open: Instant,
    last_error: Option<Instant>,
    /// The last key known to be in PostgreSQL although the file still holds it: removing
    /// drained entries failed (a full disk cannot even take a delete). Later reads skip these
    /// entries, and once nothing after them is left the file is recreated empty, which gives
    /// the disk back without writing to it. Kept in memory: after a restart they are drained
    /// again, which PostgreSQL's unique keys make harmless.
    drained_through: Option<u64>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .field("status", &self.status())
            .finish()
    }
}

impl Spool {
    /// Opens (or creates) the spool file; entries left by an earlier run are kept for draining.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let spool = Self::new(
            path,
            SpoolLimits {
                max_bytes,
                min_free_bytes: 0,
            },
        );
        match spool.status().fault {
            None => Ok(spool),
            Some(fault) => Err(SpoolError::Storage(fault)),
        }
    }

    /// A spool at `path`. Never fails: a file that cannot be opened now leaves the spool
    /// degraded, and it is opened by a later call.
    pub fn new(path: &Path, limits: SpoolLimits) -> Self {
        let mut state = State {
            db: None,
            level: Level::default(),
            fault: None,
            last_open: Instant::now(),
            last_error: None,
            drained_through: None,
        };
        if let Err(error) = reopen(path, &mut state) {
            tracing::error!(%error, path = %path.display(), "the spool cannot be opened; it is degraded until it can");
            state.fault = Some(error.to_string());
        }
        Self {
            path: path.to_owned(),
            limits,
            state: Mutex::new(state),
        }
    }

    /// How many callbacks wait in the spool (as last read, when degraded).
    pub fn depth(&self) -> u64 {
        self.state.lock().unwrap().level.entries
    }

    /// How many bytes of callbacks wait in the spool.
    pub fn bytes(&self) -> u64 {
        self.state.lock().unwrap().level.bytes
    }

    pub fn max_bytes(&self) -> u64 {
        self.limits.max_bytes
    }

    /// Whether the file is open and usable (no storage error since it was last opened).
    pub fn is_healthy(&self) -> bool {
        self.state.lock().unwrap().fault.is_none()
    }

    pub fn status(&self) -> SpoolStatus {
        let state = self.state.lock().unwrap();
        SpoolStatus {
            entries: state.level.entries,
            bytes: state.level.bytes,
            fault: state.fault.clone(),
            recovering: state.fault.is_none() && recently(state.last_error),
        }
    }

    /// Whether an append of a typical callback would be taken now: healthy, not just after a
    /// storage error, and room in both bounds.
    pub fn has_room(&self) -> bool {
        let state = self.state.lock().unwrap();
        state.fault.is_none()
            && !recently(state.last_error)
            && state.level.bytes + ROOM_FOR_A_BATCH <= self.limits.max_bytes
            && !self.below_floor_by(ROOM_FOR_A_BATCH)
    }

    /// Free bytes for unprivileged users on the spool's filesystem, if it can be read.
    fn free_bytes(&self) -> Option<u64> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let stat = nix::sys::statvfs::statvfs(dir).ok()?;
        Some((stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64))
    }

    /// Appends a batch in arrival order, durably (fsync) and all or nothing, as records of the
    /// current version.
    pub fn append(&self, batch: &[Received]) -> Result<(), SpoolError> {
        let encoded: Vec<Vec<u8>> = batch.iter().map(record::encode).collect::<Result<_, _>>()?;
        let added: u64 = encoded.iter().map(|e| e.len() as u64).sum();
        // One caller at a time: the level and the file must agree.
        let mut state = self.state.lock().unwrap();
        if state.level.bytes + added > self.limits.max_bytes {
            return Err(SpoolError::Full {
                bytes: state.level.bytes,
                max_bytes: self.limits.max_bytes,
            });
        }
        if self.below_floor_by(added) {
            return Err(SpoolError::DiskLow {
                free_bytes: self.free_bytes().unwrap_or_default(),
                min_free_bytes: self.limits.min_free_bytes,
            });
        }
        let next_seq = state.level.next_seq;
        self.with_db(&mut state, |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(CALLBACKS)?;
                for (i, entry) in encoded.iter().enumerate() {
                    table.insert(next_seq + i as u64, entry.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })?;
        state.level.next_seq += encoded.len() as u64;
        state.level.entries += encoded.len() as u64;
        state.level.bytes += added;
        Ok(())
    }

    /// The oldest `limit` entries, with their keys. An entry that cannot be decoded (a record
    /// version this zegolog does not know, or damaged bytes) is moved to a table of its own and
    /// logged with the reason, rather than blocking every entry behind it.
    pub fn oldest(&self, limit: usize) -> Result<Vec<(u64, Received)>, SpoolError> {
        let mut state = self.state.lock().unwrap();
        let after = state.drained_through.map_or(0, |key| key + 1);
        let (out, undecodable) = self.with_db(&mut state, |db| {
            let mut out = Vec::new();
            let mut undecodable = Vec::new();
            let txn = db.begin_read()?;
            let table = txn.open_table(CALLBACKS)?;
            for entry in table.range(after..)?.take(limit) {
                let (key, value) = entry?;
                match record::decode(value.value()) {
                    Ok(received) => out.push((key.value(), received)),
                    Err(error) => {
                        tracing::error!(key = key.value(), %error, "spool entry cannot be decoded; set aside in table `undecodable`");
                        undecodable.push(key.value());
                    }
                }
            }
            Ok((out, undecodable))
        })?;
        if !undecodable.is_empty() {
            self.set_aside(&mut state, &undecodable)?;
        }
        Ok(out)
    }

    fn set_aside(&self, state: &mut State, keys: &[u64]) -> Result<(), SpoolError> {
        let (entries, bytes) = self.with_db(state, |db| {
            let txn = db.begin_write()?;
            let (mut entries, mut bytes) = (0, 0);
            {
                let mut table = txn.open_table(CALLBACKS)?;
                let mut aside = txn.open_table(UNDECODABLE)?;
                for key in keys {
                    if let Some(value) = table.remove(key)? {
                        let value = value.value().to_vec();
                        aside.insert(key, value.as_slice())?;
                        entries += 1;
                        bytes += value.len() as u64;
                    }
                }
            }
            txn.commit()?;
            Ok((entries, bytes))
        })?;
        state.level.entries -= entries;
        state.level.bytes -= bytes;
        Ok(())
    }

    /// Removes entries that are safely in PostgreSQL. If the file cannot take the delete, the
    /// entries are remembered as drained (see `State::drained_through`) and the error returned.
    pub fn remove(&self, keys: &[u64]) -> Result<(), SpoolError> {
        let mut state = self.state.lock().unwrap();
        let removed = self.with_db(&mut state, |db| {
            let txn = db.begin_write()?;
            let (mut removed, mut freed) = (0, 0);
            {
                let mut table = txn.open_table(CALLBACKS)?;
                for key in keys {
                    if let Some(value) = table.remove(key)? {
                        freed += value.value().len() as u64;
                        removed += 1;
                    }
                }
            }
            txn.commit()?;
            Ok((removed, freed))
        });
        match removed {
            Ok((removed, freed)) => {
                state.level.entries -= removed;
                state.level.bytes -= freed;
            }
            Err(error) => {
                // Skipped from now on; the level is counted again when the file is reopened.
                let last = keys.iter().copied().max();
                state.drained_through = state.drained_through.max(last);
                return Err(error);
            }
        }
        self.settle(&mut state);
        Ok(())
    }

    /// Once nothing waits to be drained, recreates the file if that gives space back: when
    /// entries already in PostgreSQL could not be removed, or when the filesystem is below the
    /// floor (redb keeps the space it grew into).
    fn settle(&self, state: &mut State) {
        if state.db.is_none() || state.level.entries > 0 {
            return;
        }
        if state.drained_through.is_none() && !self.below_floor_by(ROOM_FOR_A_BATCH) {
            return;
        }
        tracing::info!("every spooled callback is in PostgreSQL: recreating the spool file to give its space back");
        state.db = None;
        let _ = std::fs::remove_file(&self.path);
        state.drained_through = None;
        if let Err(error) = reopen(&self.path, state) {
            tracing::error!(%error, "recreating the spool failed; it is degraded until it can be opened");
            state.fault = Some(error.to_string());
        }
    }

    /// Whether `more` bytes would take the free space below the floor (never with no floor).
    fn below_floor_by(&self, more: u64) -> bool {
        self.limits.min_free_bytes > 0
            && self
                .free_bytes()
                .is_some_and(|free| free < self.limits.min_free_bytes.saturating_add(more))
    }

    /// Entries in the file (reads it; for tests and checks).
    pub fn count_on_disk(&self) -> Result<u64, SpoolError> {
        let mut state = self.state.lock().unwrap();
        self.with_db(&mut state, |db| {
            let txn = db.begin_read()?;
            Ok(txn.open_table(CALLBACKS)?.len()?)
        })
    }

    /// Runs `f` on the open file, reopening a degraded spool first (at most once a second).
    /// A storage error closes the file and leaves the spool degraded: redb refuses every call
    /// after an I/O error until the database is reopened.
    fn with_db<T>(
        &self,
        state: &mut State,
        f: impl FnOnce(&Database) -> Result<T, SpoolError>,
    ) -> Result<T, SpoolError> {
        if state.db.is_none() {
            let fault = state.fault.clone().unwrap_or_default();
            if state.last_open.elapsed() < REOPEN_EVERY {
                return Err(SpoolError::Degraded(fault));
            }
            match reopen(&self.path, state) {
                Ok(()) => {
                    tracing::info!(
                        entries = state.level.entries,
                        "the spool is reopened and healthy again"
                    );
                    self.settle(state);
                    if state.db.is_none() {
                        return Err(SpoolError::Degraded(
                            state.fault.clone().unwrap_or_default(),
                        ));
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "reopening the spool failed; still degraded");
                    state.fault = Some(error.to_string());
                    return Err(SpoolError::Degraded(error.to_string()));
                }
            }
        }
        let db = state.db.as_ref().expect("opened above");
        match f(db) {
            Err(SpoolError::Storage(error)) => {
                tracing::error!(%error, "spool storage error: closing the spool, it is reopened within a second");
                state.db = None;
                state.fault = Some(error.clone());
                state.last_open = Instant::now();
                state.last_error = Some(Instant::now());
                Err(SpoolError::Storage(error))
            }
            other => other,
        }
    }
}

fn recently(error: Option<Instant>) -> bool {
    error.is_some_and(|at| at.elapsed() < QUIET_AFTER_ERROR)
}

/// Opens the file at `path` into `state` and counts what it holds.
fn reopen(path: &Path, state: &mut State) -> Result<(), SpoolError> {
    state.db = None;
    state.last_open = Instant::now();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| SpoolError::Storage(e.to_string()))?;
    }
    let db = Database::create(path)?;
    let txn = db.begin_write()?;
    txn.open_table(CALLBACKS)?;
    txn.commit()?;
    let mut level = Level {
        // Keys keep increasing across reopening, even when the file is empty now.
        next_seq: state.level.next_seq,
        ..Level::default()
    };
    let after = state.drained_through.map_or(0, |key| key + 1);
    {
        let txn = db.begin_read()?;
        let table = txn.open_table(CALLBACKS)?;
        for entry in table.range(after..)? {
            let (key, value) = entry?;
            level.entries += 1;
            level.bytes += value.value().len() as u64;
            level.next_seq = level.next_seq.max(key.value() + 1);
        }
    }
    state.db = Some(db);
    state.level = level;
    state.fault = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::{receive, Encoding, Origin};

    fn received(n: u32) -> Received {
        let body = format!(
            r#"{{"event":"stream_x","appid":"1","timestamp":"1","nonce":"{n}","signature":"s","n":"{n}"}}"#
        );
        receive(body.as_bytes(), Encoding::Json, Origin::Operator).unwrap()
    }

    #[test]
    fn keeps_order_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        {
            let spool = Spool::open(&path, 1 << 20).unwrap();
            spool.append(&[received(1), received(2)]).unwrap();
            spool.append(&[received(3)]).unwrap();
            assert_eq!(spool.depth(), 3);
        }
        let spool = Spool::open(&path, 1 << 20).unwrap();
        assert_eq!(spool.depth(), 3);
        let oldest = spool.oldest(2).unwrap();
        assert_eq!(oldest[0].1, received(1));
        assert_eq!(oldest[1].1, received(2));
        spool.remove(&[oldest[0].0, oldest[1].0]).unwrap();
        spool.append(&[received(4)]).unwrap();
        let rest: Vec<_> = spool
            .oldest(10)
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(rest, [received(3), received(4)]);
        assert_eq!(spool.count_on_disk().unwrap(), 2);
    }

    #[test]
    fn refuses_appends_beyond_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let one = record::encode(&received(1)).unwrap().len() as u64;
        let spool = Spool::open(&dir.path().join("s.redb"), one * 2).unwrap();
        spool.append(&[received(1), received(2)]).unwrap();
        assert!(matches!(
            spool.append(&[received(3)]),
            Err(SpoolError::Full { .. })
        ));
        assert_eq!(spool.depth(), 2);
    }

    /// Log lines written while `f` runs on this thread.
    /// Puts `bytes` in the spool file at `path` under `key`, as another version of zegolog
    /// would have left it.
    fn put_raw_entry(path: &std::path::Path, key: u64, bytes: &[u8]) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(CALLBACKS)
            .unwrap()
            .insert(key, bytes)
            .unwrap();
        txn.commit().unwrap();
    }

    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Lines(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        (out, text)
    }

    #[test]
    fn an_entry_of_an_unknown_version_is_set_aside_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        let mut future = serde_json::to_value(record::SpoolRecord::of(&received(2))).unwrap();
        future["version"] = serde_json::json!(99);
        let future = serde_json::to_vec(&future).unwrap();
        {
            let spool = Spool::open(&path, 1 << 20).unwrap();
            spool.append(&[received(1)]).unwrap();
        }
        // As a newer zegolog would have left it, between two entries of this one.
        put_raw_entry(&path, 1, &future);
        let spool = Spool::open(&path, 1 << 20).unwrap();
        spool.append(&[received(3)]).unwrap();
        assert_eq!(spool.depth(), 3);

        let (oldest, log) = logged(|| spool.oldest(10).unwrap());

        let read: Vec<_> = oldest.into_iter().map(|(_, r)| r).collect();
        assert_eq!(read, [received(1), received(3)]);
        assert_eq!(spool.depth(), 2);
        assert!(log.contains("key=1"), "{log}");
        assert!(log.contains("spool record version 99 is unknown"), "{log}");
        assert!(log.contains("set aside in table `undecodable`"), "{log}");
        drop(spool);
        let db = Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let aside = txn.open_table(UNDECODABLE).unwrap();
        assert_eq!(aside.get(1).unwrap().unwrap().value(), future.as_slice());
        assert_eq!(aside.len().unwrap(), 1);
    }

    #[test]
    fn entries_written_before_records_had_a_version_drain_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        let old = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/spool-v0/other-unsigned.json"
        ));
        put_raw_entry(&path, 0, old);
        let spool = Spool::open(&path, 1 << 20).unwrap();
        spool.append(&[received(1)]).unwrap();

        let oldest = spool.oldest(10).unwrap();

        assert_eq!(oldest.len(), 2);
        assert_eq!(oldest[0].1.event, "stream_create");
        assert_eq!(oldest[0].1.signed, None);
        assert_eq!(oldest[1].1, received(1));
        assert_eq!(spool.depth(), 2);
    }
}
