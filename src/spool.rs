//! The durable local spool: where authenticated callbacks wait while PostgreSQL cannot take them.
//!
//! An embedded [redb](https://docs.rs/redb) database under the data dir, one entry per callback,
//! keyed by an increasing sequence number so that draining keeps arrival order. Every append is
//! a redb transaction committed with `Durability::Immediate` (fsync) before the sender is told
//! 2xx. Draining writes a run of entries to PostgreSQL (idempotently) and only then removes them:
//! a crash in between drains them again, and PostgreSQL's unique keys make that harmless.
//!
//! The spool is bounded in bytes; a full spool refuses appends so that the sender retries later.
//! Calls block on disk I/O: async callers run them on the blocking pool.

use std::path::Path;
use std::sync::Mutex;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::callback::Received;

const CALLBACKS: TableDefinition<u64, &[u8]> = TableDefinition::new("callbacks");
/// Entries that could not be decoded, set aside so that they do not block the ones behind them.
const UNDECODABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("undecodable");

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full ({bytes} of {max_bytes} bytes)")]
    Full { bytes: u64, max_bytes: u64 },
    #[error("spool storage error: {0}")]
    Storage(String),
    #[error("a spooled entry could not be decoded: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl From<redb::Error> for SpoolError {
    fn from(e: redb::Error) -> Self {
        Self::Storage(e.to_string())
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

/// The spool file and what it holds.
pub struct Spool {
    db: Database,
    max_bytes: u64,
    level: Mutex<Level>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("max_bytes", &self.max_bytes)
            .field("level", &*self.level.lock().unwrap())
            .finish()
    }
}

impl Spool {
    /// Opens (or creates) the spool file; entries left by an earlier run are kept for draining.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| SpoolError::Storage(e.to_string()))?;
        }
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(CALLBACKS)?;
        txn.commit()?;
        let mut level = Level::default();
        {
            let txn = db.begin_read()?;
            let table = txn.open_table(CALLBACKS)?;
            for entry in table.iter()? {
                let (key, value) = entry?;
                level.entries += 1;
                level.bytes += value.value().len() as u64;
                level.next_seq = key.value() + 1;
            }
        }
        Ok(Self {
            db,
            max_bytes,
            level: Mutex::new(level),
        })
    }

    /// How many callbacks wait in the spool.
    pub fn depth(&self) -> u64 {
        self.level.lock().unwrap().entries
    }

    /// How many bytes of callbacks wait in the spool.
    pub fn bytes(&self) -> u64 {
        self.level.lock().unwrap().bytes
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Appends a batch in arrival order, durably (fsync) and all or nothing.
    pub fn append(&self, batch: &[Received]) -> Result<(), SpoolError> {
        let encoded: Vec<Vec<u8>> = batch
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<_, _>>()?;
        let added: u64 = encoded.iter().map(|e| e.len() as u64).sum();
        // One appender at a time: the level and the file must agree.
        let mut level = self.level.lock().unwrap();
        if level.bytes + added > self.max_bytes {
            return Err(SpoolError::Full {
                bytes: level.bytes,
                max_bytes: self.max_bytes,
            });
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(CALLBACKS)?;
            for (i, entry) in encoded.iter().enumerate() {
                table.insert(level.next_seq + i as u64, entry.as_slice())?;
            }
        }
        txn.commit()?;
        level.next_seq += encoded.len() as u64;
        level.entries += encoded.len() as u64;
        level.bytes += added;
        Ok(())
    }

    /// The oldest `limit` entries, with their keys. An entry that cannot be decoded (written
    /// by an incompatible version, say) is moved to a table of its own and logged, rather than
    /// blocking every entry behind it.
    pub fn oldest(&self, limit: usize) -> Result<Vec<(u64, Received)>, SpoolError> {
        let mut out = Vec::new();
        let mut undecodable = Vec::new();
        {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(CALLBACKS)?;
            for entry in table.iter()?.take(limit) {
                let (key, value) = entry?;
                match serde_json::from_slice(value.value()) {
                    Ok(received) => out.push((key.value(), received)),
                    Err(error) => {
                        tracing::error!(key = key.value(), %error, "spool entry cannot be decoded; set aside in table `undecodable`");
                        undecodable.push(key.value());
                    }
                }
            }
        }
        if !undecodable.is_empty() {
            self.set_aside(&undecodable)?;
        }
        Ok(out)
    }

    fn set_aside(&self, keys: &[u64]) -> Result<(), SpoolError> {
        let mut level = self.level.lock().unwrap();
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(CALLBACKS)?;
            let mut aside = txn.open_table(UNDECODABLE)?;
            for key in keys {
                if let Some(value) = table.remove(key)? {
                    let value = value.value().to_vec();
                    aside.insert(key, value.as_slice())?;
                    level.entries -= 1;
                    level.bytes -= value.len() as u64;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes entries that are safely in PostgreSQL.
    pub fn remove(&self, keys: &[u64]) -> Result<(), SpoolError> {
        let mut level = self.level.lock().unwrap();
        let txn = self.db.begin_write()?;
        let mut freed = 0;
        let mut removed = 0;
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
        level.entries -= removed;
        level.bytes -= freed;
        Ok(())
    }

    /// Entries in the file (reads it; for tests and checks).
    pub fn count_on_disk(&self) -> Result<u64, SpoolError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(CALLBACKS)?.len()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::{Encoding, Envelope, Fields};

    fn received(n: u32) -> Received {
        let body = format!(
            r#"{{"event":"stream_x","appid":"1","timestamp":"1","nonce":"{n}","signature":"s","n":"{n}"}}"#
        );
        let fields = Fields::parse(body.as_bytes(), Encoding::Json).unwrap();
        Received::new(
            &Envelope::from_fields(&fields).unwrap(),
            &fields,
            Encoding::Json,
        )
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
        let one = serde_json::to_vec(&received(1)).unwrap().len() as u64;
        let spool = Spool::open(&dir.path().join("s.redb"), one * 2).unwrap();
        spool.append(&[received(1), received(2)]).unwrap();
        assert!(matches!(
            spool.append(&[received(3)]),
            Err(SpoolError::Full { .. })
        ));
        assert_eq!(spool.depth(), 2);
    }
}
