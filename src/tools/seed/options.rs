//! What to seed ([`SeedOptions`]) and what a seed wrote ([`SeedReport`]).

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::tools::traffic::MINUTE_MS;

// The defaults and bounds of `--events`, `--apps` and `--days`, here once: `zegolog seed` and
// `zegolog bench-queries` (which seeds with them) take the same values, and
// [`SeedOptions::new`] has the same defaults.
pub const DEFAULT_EVENTS: u64 = 1_000_000;
pub const EVENTS_RANGE: RangeInclusive<u64> = 1..=1_000_000_000;
pub const DEFAULT_APPS: u32 = 3;
pub const APPS_RANGE: RangeInclusive<i64> = 1..=1000;
pub const DEFAULT_DAYS: u32 = 30;
pub const DAYS_RANGE: RangeInclusive<i64> = 1..=3650;
/// The default of `--chunk-rows`, and of [`SeedOptions::new`].
pub const DEFAULT_CHUNK_ROWS: u64 = 100_000;

/// What to seed; [`SeedOptions::new`] gives the command's defaults.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub events: u64,
    pub apps: u32,
    pub days: u32,
    pub seed: u64,
    pub chunk_rows: usize,
    /// The traffic ends here (exclusive); the command uses the current minute.
    pub end: DateTime<Utc>,
    /// Progress bars on standard error (drawn only when it is a terminal).
    pub progress: bool,
}

impl SeedOptions {
    pub fn new(events: u64) -> Self {
        let now = Utc::now().timestamp_millis();
        Self {
            events,
            apps: DEFAULT_APPS,
            days: DEFAULT_DAYS,
            seed: rand::random(),
            chunk_rows: DEFAULT_CHUNK_ROWS as usize,
            end: Utc
                .timestamp_millis_opt(now - now.rem_euclid(MINUTE_MS))
                .single()
                .expect("the current minute is a valid time"),
            progress: true,
        }
    }

    /// The options of the traffic flags `zegolog seed` and `zegolog bench-queries` share, the
    /// defaults for the rest; without `seed`, a random one.
    pub fn from_flags(events: u64, apps: u32, days: u32, seed: Option<u64>) -> Self {
        let mut options = Self::new(events);
        options.apps = apps;
        options.days = days;
        if let Some(seed) = seed {
            options.seed = seed;
        }
        options
    }
}

/// What a seed wrote, and how long each step took.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub logouts: u64,
    /// Logins of seeded logouts plus open sessions.
    pub logins: u64,
    /// Logins without a logout: online at the end, or whose logout was lost.
    pub open_sessions: u64,
    pub logouts_without_login: u64,
    pub lifecycle_events: u64,
    pub room_lifecycles: u64,
    pub appids: Vec<i64>,
    pub rooms: u64,
    pub users: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The start of the incident hour (a `connection_lost` spike), if it fell in the window.
    pub incident: Option<DateTime<Utc>>,
    /// `room_logouts.id` of the seeded rows: `first..=last`.
    pub first_id: i64,
    pub last_id: i64,
    pub partitions: Vec<String>,
    /// Generating and copying every row.
    pub copy: Duration,
    /// Appending the logouts' rollup contributions (overlaps the end of the copy).
    pub rollups: Duration,
    pub compact: Duration,
    pub analyze: Duration,
    pub total: Duration,
}

impl SeedReport {
    /// Logouts per second over the whole seed, rollups and ANALYZE included.
    pub(crate) fn logouts_per_sec(&self) -> f64 {
        self.logouts as f64 / self.total.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for SeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let appids: Vec<String> = self.appids.iter().map(i64::to_string).collect();
        writeln!(
            f,
            "seeded {} logouts ({:.0}/s overall) from {} to {}, apps {}",
            self.logouts,
            self.logouts_per_sec(),
            self.start.format("%Y-%m-%d %H:%M UTC"),
            self.end.format("%Y-%m-%d %H:%M UTC"),
            appids.join(", ")
        )?;
        writeln!(
            f,
            "  rooms {}, users about {}, room lifecycles {} ({} create/close events)",
            self.rooms, self.users, self.room_lifecycles, self.lifecycle_events
        )?;
        writeln!(
            f,
            "  logins {} ({} open sessions), logouts without a login {}",
            self.logins, self.open_sessions, self.logouts_without_login
        )?;
        if let Some(incident) = self.incident {
            writeln!(
                f,
                "  incident: connection_lost spike {} to {}",
                incident.format("%Y-%m-%d %H:%M"),
                (incident + chrono::Duration::hours(1)).format("%H:%M UTC")
            )?;
        }
        writeln!(
            f,
            "  room_logouts ids {}..={}, partitions {}",
            self.first_id,
            self.last_id,
            self.partitions.join(", ")
        )?;
        write!(
            f,
            "  time: copy {:.1} s, rollups {:.1} s, compaction {:.1} s, analyze {:.1} s, total {:.1} s",
            self.copy.as_secs_f64(),
            self.rollups.as_secs_f64(),
            self.compact.as_secs_f64(),
            self.analyze.as_secs_f64(),
            self.total.as_secs_f64()
        )
    }
}
