//! The row generator: every session of the [`Plan`], its logout and (mostly) its login, the
//! sessions still open at the end, and the rooms' lifecycle events, as COPY text.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::copy::{Buffer, Chunk};
use super::copy_text::{push_i64, push_ts, push_u64};
use super::lifecycles::Lifecycles;
use super::plan::{Plan, LOGIN_SHARE};
use crate::tools::traffic::{
    self, mix, normal, skewed, BOT_ACCOUNT_PREFIX, BOT_NICKNAME, HOUR_MS, MINUTE_MS,
    REASON_CONNECTION_LOST, REASON_HEARTBEAT_TIMEOUT, REASON_KICKED_OUT, REASON_NORMAL,
    REASON_TOKEN_EXPIRED, ROLE_ADMIN, ROLE_AUDIENCE, ROOM_ID_PREFIX,
};

/// Where the generator sends each table's chunks.
pub(super) struct Senders {
    pub logouts: mpsc::Sender<Chunk>,
    pub logins: mpsc::Sender<Chunk>,
    pub lifecycle: mpsc::Sender<Chunk>,
}

/// Who logged in: room, user and role.
#[derive(Debug, Clone, Copy)]
struct Who {
    app: usize,
    room: u32,
    role: u8,
    /// User index in the app; for a bot, the room's bot.
    user: u64,
    /// `user_account` digits; `None` for a bot (`bot_rec_<room>`).
    account: Option<u64>,
}

#[derive(Debug, Default)]
pub(super) struct Stats {
    pub open_sessions: u64,
    pub logouts_without_login: u64,
    pub room_lifecycles: u64,
}

pub(super) struct Generator {
    plan: Plan,
    rng: StdRng,
    first_id: i64,
    /// Session ids are `session_base + k`: fresh on every run, some above 2^63.
    session_base: u64,
    update_seq: Vec<Vec<u64>>,
    lifecycles: Lifecycles,
    logouts: Buffer,
    logins: Buffer,
    stats: Stats,
}

impl Generator {
    pub(super) fn new(plan: Plan, first_id: i64) -> Self {
        let rng = StdRng::seed_from_u64(plan.seed ^ 0x5eed);
        let session_base = rand::thread_rng().gen_range(1u64 << 62..u64::MAX - (1 << 40));
        Self {
            update_seq: plan
                .apps
                .iter()
                .map(|a| vec![0; a.rooms as usize])
                .collect(),
            logouts: Buffer::new(plan.chunk_rows),
            logins: Buffer::new(plan.chunk_rows),
            plan,
            rng,
            first_id,
            session_base,
            lifecycles: Lifecycles::default(),
            stats: Stats::default(),
        }
    }

    /// Generates every row. Each table's sender is dropped as soon as its last row is sent: the
    /// copy reading it can then finish, and the connection move on (to the rollups, or to the
    /// lifecycle events).
    pub(super) fn run(mut self, tx: Senders) -> anyhow::Result<Stats> {
        let mut k: u64 = 0;
        for m in 0..self.plan.weight_to.len() {
            let minute_ms = self.plan.start_ms + m as i64 * MINUTE_MS;
            let incident = self
                .plan
                .incident
                .is_some_and(|(from, to)| (from..to).contains(&minute_ms));
            for _ in 0..self.plan.logouts_in_minute(m) {
                let logout_ms = minute_ms + self.rng.gen_range(0..MINUTE_MS);
                self.session(k, logout_ms, incident, &tx.logouts, &tx.logins)?;
                k += 1;
            }
        }
        debug_assert_eq!(k, self.plan.events);
        self.logouts.flush(&tx.logouts)?;
        drop(tx.logouts);
        self.open_sessions(k, &tx.logins)?;
        self.logins.flush(&tx.logins)?;
        drop(tx.logins);
        let lifecycles = std::mem::take(&mut self.lifecycles);
        self.stats.room_lifecycles =
            lifecycles.write_events(&self.plan, &mut self.rng, &tx.lifecycle)?;
        Ok(self.stats)
    }

    fn who(&mut self) -> Who {
        let rng = &mut self.rng;
        let u: f64 = rng.gen();
        let app = self
            .plan
            .apps
            .iter()
            .position(|a| u < a.share_to)
            .unwrap_or(self.plan.apps.len() - 1);
        let shape = &self.plan.apps[app];
        let room = skewed(rng, u64::from(shape.rooms)) as u32;
        let role = traffic::role(rng);
        // Activity per user falls off like a power law, milder than rooms: the busiest user
        // has about users^(-2/3) of the app's sessions.
        let user = ((shape.users as f64 * rng.gen::<f64>().powf(1.5)) as u64).min(shape.users - 1);
        let account =
            (role != ROLE_ADMIN).then(|| traffic::user_account(mix(shape.user_salt ^ user)));
        Who {
            app,
            room,
            role,
            user,
            account,
        }
    }

    /// Logout `k` at `logout_ms`, and (mostly) its login.
    fn session(
        &mut self,
        k: u64,
        logout_ms: i64,
        incident: bool,
        logouts: &mpsc::Sender<Chunk>,
        logins: &mpsc::Sender<Chunk>,
    ) -> anyhow::Result<()> {
        let who = self.who();
        let rng = &mut self.rng;
        let reason: u8 = if incident {
            match rng.gen_range(0..100) {
                0..=59 => REASON_CONNECTION_LOST,
                60..=69 => REASON_HEARTBEAT_TIMEOUT,
                _ => REASON_NORMAL,
            }
        } else {
            match rng.gen_range(0..100) {
                0..=81 => REASON_NORMAL,
                82..=90 => REASON_CONNECTION_LOST,
                91..=95 => REASON_HEARTBEAT_TIMEOUT,
                96..=97 => REASON_KICKED_OUT,
                _ => REASON_TOKEN_EXPIRED,
            }
        };
        // Log-normal session lengths: (median seconds, sigma).
        let (median_s, sigma) = match (reason, who.role) {
            (REASON_TOKEN_EXPIRED, _) => (3_600.0, 0.3), // tokens expire about an hour in
            (REASON_KICKED_OUT, _) => (120.0, 1.2),
            (_, ROLE_ADMIN) => (1_800.0, 1.0), // recording and moderation bots stay long
            (REASON_CONNECTION_LOST, _) | (REASON_HEARTBEAT_TIMEOUT, _) => (180.0, 1.6),
            _ => (240.0, 1.5),
        };
        let mut duration_ms = traffic::session_ms(rng, median_s, sigma) as i64;
        match rng.gen_range(0..5_000) {
            0 => duration_ms = 0,
            1 => duration_ms = -rng.gen_range(1..5_000), // the sender's clock went backwards
            _ => {}
        }
        let login_ms = logout_ms - duration_ms;
        let session_id = self.session_base + k;
        let lifecycle = self.lifecycles.count(
            &self.plan,
            who.app,
            who.room,
            who.account,
            login_ms,
            Some((logout_ms, reason)),
        );
        let seq = &mut self.update_seq[who.app][who.room as usize];
        *seq += 2;
        let update_seq = *seq;
        let received_ms = logout_ms + self.rng.gen_range(200..3_000);

        let shape = &self.plan.apps[who.app];
        let out = &mut self.logouts.data;
        push_i64(out, self.first_id + k as i64);
        out.push(b'\t');
        push_i64(out, shape.appid);
        out.push(b'\t');
        out.extend_from_slice(ROOM_ID_PREFIX.as_bytes());
        push_u64(out, u64::from(who.room));
        out.push(b'\t');
        push_u64(out, lifecycle);
        out.push(b'\t');
        self.plan.push_user(out, &who);
        out.push(b'\t');
        push_u64(out, session_id);
        out.push(b'\t');
        push_ts(out, login_ms);
        out.push(b'\t');
        push_ts(out, logout_ms);
        out.push(b'\t');
        push_u64(out, u64::from(reason));
        out.push(b'\t');
        push_u64(out, u64::from(who.role));
        out.push(b'\t');
        push_u64(out, update_seq);
        out.push(b'\t');
        push_ts(out, received_ms);
        out.push(b'\n');
        self.logouts.row_done(logouts)?;

        if self.rng.gen_bool(LOGIN_SHARE) {
            self.login(
                &who,
                session_id,
                login_ms,
                lifecycle,
                update_seq - 1,
                logins,
            )?;
        } else {
            self.stats.logouts_without_login += 1;
        }
        Ok(())
    }

    fn login(
        &mut self,
        who: &Who,
        session_id: u64,
        login_ms: i64,
        room_seq: u64,
        update_seq: u64,
        logins: &mpsc::Sender<Chunk>,
    ) -> anyhow::Result<()> {
        let relogin = u64::from(self.rng.gen_bool(0.03));
        let received_ms = login_ms + self.rng.gen_range(200..3_000);
        let shape = &self.plan.apps[who.app];
        let out = &mut self.logins.data;
        push_i64(out, shape.appid);
        out.push(b'\t');
        out.extend_from_slice(ROOM_ID_PREFIX.as_bytes());
        push_u64(out, u64::from(who.room));
        out.push(b'\t');
        // The room's name: its host's nickname stem.
        let stem = mix(shape.room_salt ^ u64::from(who.room)) as usize % self.plan.nicknames.len();
        out.extend_from_slice(self.plan.nicknames[stem].as_bytes());
        out.extend_from_slice(b"'s room ");
        push_u64(out, u64::from(who.room));
        out.push(b'\t');
        push_u64(out, room_seq);
        out.push(b'\t');
        self.plan.push_user(out, who);
        out.push(b'\t');
        push_u64(out, session_id);
        out.push(b'\t');
        push_ts(out, login_ms);
        out.push(b'\t');
        push_u64(out, u64::from(who.role));
        out.extend_from_slice(if who.role == ROLE_AUDIENCE {
            b"\t0\t"
        } else {
            b"\t1\t"
        });
        push_u64(out, relogin);
        out.push(b'\t');
        push_u64(out, update_seq);
        out.push(b'\t');
        push_ts(out, received_ms);
        out.push(b'\n');
        self.logins.row_done(logins)
    }

    /// Logins without a logout: users online at the end (logged in during the last hours), and
    /// a few older ones whose logout callback never came.
    fn open_sessions(&mut self, first_k: u64, logins: &mpsc::Sender<Chunk>) -> anyhow::Result<()> {
        let (now, stale) = (self.plan.open_now(), self.plan.open_stale());
        for j in 0..now + stale {
            let who = self.who();
            let login_ms = if j < now {
                let age = (1_200_000.0 * normal(&mut self.rng).exp())
                    .clamp(1_000.0, 6.0 * HOUR_MS as f64);
                self.plan.end_ms - age as i64
            } else {
                self.rng
                    .gen_range(self.plan.start_ms..self.plan.end_ms - 12 * HOUR_MS)
            };
            let room_seq =
                self.lifecycles
                    .count(&self.plan, who.app, who.room, who.account, login_ms, None);
            let seq = &mut self.update_seq[who.app][who.room as usize];
            *seq += 1;
            let update_seq = *seq;
            self.login(
                &who,
                self.session_base + first_k + j,
                login_ms,
                room_seq,
                update_seq,
                logins,
            )?;
            self.stats.open_sessions += 1;
        }
        Ok(())
    }
}

impl Plan {
    /// `user_account \t user_nickname`.
    fn push_user(&self, out: &mut Vec<u8>, who: &Who) {
        match who.account {
            Some(account) => {
                push_u64(out, account);
                out.push(b'\t');
                let salt = self.apps[who.app].user_salt;
                let stem = traffic::nickname_stem(mix(salt ^ who.user));
                out.extend_from_slice(self.nicknames[stem].as_bytes());
                push_u64(out, who.user % 1000);
            }
            None => {
                out.extend_from_slice(BOT_ACCOUNT_PREFIX.as_bytes());
                push_u64(out, u64::from(who.room));
                out.push(b'\t');
                out.extend_from_slice(BOT_NICKNAME.as_bytes());
            }
        }
    }
}
