//! Room lifecycles: a room's sessions within one slot of [`LIFECYCLE_MS`] (offset per room),
//! as the sessions show them, and their `room_create` and `room_close` events.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::Rng;
use tokio::sync::mpsc;

use super::copy::{Buffer, Chunk};
use super::copy_text::{push_i64, push_ts, push_u64};
use super::plan::{Plan, LIFECYCLE_MS};
use crate::tools::traffic::{mix, BOT_ACCOUNT_PREFIX, ROOM_ID_PREFIX};

/// A room lifecycle, as its sessions show it.
#[derive(Debug, Clone, Copy)]
struct Lifecycle {
    room_seq: u64,
    first_login_ms: i64,
    /// Account of the first user in (the creator); `None` for a bot.
    creator: Option<u64>,
    /// `i64::MIN` while nobody has logged out.
    last_logout_ms: i64,
    last_reason: u8,
}

/// Every lifecycle the sessions so far showed, by (app, room, slot).
#[derive(Debug, Default)]
pub(super) struct Lifecycles {
    by_slot: HashMap<(u32, u32, u32), Lifecycle>,
}

impl Lifecycles {
    /// The `room_seq` of the lifecycle of room `room` of app `app` at the session's logout
    /// (else its login), after counting the session in it; `account` is its user's, `None`
    /// for a bot.
    pub(super) fn count(
        &mut self,
        plan: &Plan,
        app: usize,
        room: u32,
        account: Option<u64>,
        login_ms: i64,
        logout: Option<(i64, u8)>,
    ) -> u64 {
        let shape = &plan.apps[app];
        let at_ms = logout.map_or(login_ms, |(ms, _)| ms);
        let offset = (mix(shape.room_salt ^ u64::from(room)) % LIFECYCLE_MS as u64) as i64;
        let slot = (at_ms + offset).div_euclid(LIFECYCLE_MS) as u32;
        let room_seq = mix(shape.room_salt ^ (u64::from(room) << 32) ^ u64::from(slot));
        let entry = self
            .by_slot
            .entry((app as u32, room, slot))
            .or_insert(Lifecycle {
                room_seq,
                first_login_ms: i64::MAX,
                creator: None,
                last_logout_ms: i64::MIN,
                last_reason: 0,
            });
        if login_ms < entry.first_login_ms {
            entry.first_login_ms = login_ms;
            entry.creator = account;
        }
        if let Some((logout_ms, reason)) = logout {
            if logout_ms > entry.last_logout_ms {
                entry.last_logout_ms = logout_ms;
                entry.last_reason = reason;
            }
        }
        entry.room_seq
    }

    /// `room_create` and `room_close` of every lifecycle, sent to `tx`; a lifecycle whose slot
    /// is still running at the end is open; 1% of the events were lost on the way. Returns how
    /// many lifecycles there were.
    pub(super) fn write_events(
        self,
        plan: &Plan,
        rng: &mut StdRng,
        tx: &mpsc::Sender<Chunk>,
    ) -> anyhow::Result<u64> {
        let mut lifecycles: Vec<_> = self.by_slot.into_iter().collect();
        lifecycles.sort_unstable_by_key(|(key, _)| *key);
        let count = lifecycles.len() as u64;
        let mut buffer = Buffer::new(plan.chunk_rows);
        for ((app, room, slot), life) in lifecycles {
            let shape = &plan.apps[app as usize];
            let offset = (mix(shape.room_salt ^ u64::from(room)) % LIFECYCLE_MS as u64) as i64;
            let slot_end = (i64::from(slot) + 1) * LIFECYCLE_MS - offset;
            if rng.gen_bool(0.99) {
                let at = life.first_login_ms - rng.gen_range(0..3_000);
                let out = &mut buffer.data;
                lifecycle_head(out, shape.appid, room, life.room_seq, "room_create");
                push_ts(out, at);
                out.push(b'\t');
                match life.creator {
                    Some(account) => push_u64(out, account),
                    None => {
                        out.extend_from_slice(BOT_ACCOUNT_PREFIX.as_bytes());
                        push_u64(out, u64::from(room));
                    }
                }
                out.extend_from_slice(b"\t\\N\t");
                push_ts(out, at + rng.gen_range(200..3_000));
                out.push(b'\n');
                buffer.row_done(tx)?;
            }
            let closed = slot_end <= plan.end_ms && life.last_logout_ms != i64::MIN;
            if closed && rng.gen_bool(0.99) {
                let at = (life.last_logout_ms + rng.gen_range(0..5_000)).min(plan.end_ms - 1);
                // The last user's logout decides: normal, heartbeat timeout, went offline, kicked.
                let close_reason = match life.last_reason {
                    1 => 1,
                    2 => 2,
                    3 => 3,
                    _ => 0,
                };
                let out = &mut buffer.data;
                lifecycle_head(out, shape.appid, room, life.room_seq, "room_close");
                push_ts(out, at);
                out.extend_from_slice(b"\t\\N\t");
                push_u64(out, close_reason);
                out.push(b'\t');
                push_ts(out, at + rng.gen_range(200..3_000));
                out.push(b'\n');
                buffer.row_done(tx)?;
            }
        }
        buffer.flush(tx)?;
        Ok(count)
    }
}

fn lifecycle_head(out: &mut Vec<u8>, appid: i64, room: u32, room_seq: u64, event: &str) {
    push_i64(out, appid);
    out.push(b'\t');
    out.extend_from_slice(ROOM_ID_PREFIX.as_bytes());
    push_u64(out, u64::from(room));
    out.push(b'\t');
    push_u64(out, room_seq);
    out.push(b'\t');
    out.extend_from_slice(event.as_bytes());
    out.push(b'\t');
}
