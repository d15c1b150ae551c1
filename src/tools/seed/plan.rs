//! The plan of a seed: everything random that is fixed before the first row (apps, rooms,
//! users, how many logouts each minute gets), from the daily cycle and the incident hour.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::copy_text::copy_escape;
use super::options::SeedOptions;
use crate::tools::traffic::{DAY_MS, HOUR_MS, MINUTE_MS, NICKNAMES};

/// Room lifecycles: a room's sessions within one slot of this length (offset per room).
pub(super) const LIFECYCLE_MS: i64 = 6 * HOUR_MS;
/// Share of logouts whose login was stored too.
pub(super) const LOGIN_SHARE: f64 = 0.96;

/// One app's rooms and users.
#[derive(Debug, Clone)]
pub(super) struct App {
    pub(super) appid: i64,
    /// Cumulative share of the traffic, up to and including this app.
    pub(super) share_to: f64,
    pub(super) rooms: u32,
    pub(super) users: u64,
    pub(super) room_salt: u64,
    pub(super) user_salt: u64,
}

/// Everything random about a seed that is fixed before the first row: apps, rooms, users, and
/// how many logouts each minute of the window gets.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) events: u64,
    pub(super) seed: u64,
    pub(super) chunk_rows: usize,
    pub(super) start_ms: i64,
    pub(super) end_ms: i64,
    /// `[start, end)` of the incident hour.
    pub(super) incident: Option<(i64, i64)>,
    pub(super) apps: Vec<App>,
    /// Cumulative traffic weight at the end of each minute of the window.
    pub(super) weight_to: Vec<f64>,
    /// [`NICKNAMES`], escaped for COPY, in their order.
    pub(super) nicknames: Vec<String>,
}

impl Plan {
    pub(super) fn new(options: &SeedOptions) -> Self {
        let end_ms = options.end.timestamp_millis();
        let end_ms = end_ms - end_ms.rem_euclid(MINUTE_MS);
        let start_ms = end_ms - i64::from(options.days) * DAY_MS;
        let incident_ms = end_ms - end_ms.rem_euclid(HOUR_MS) - 6 * HOUR_MS;
        let incident = (incident_ms >= start_ms).then_some((incident_ms, incident_ms + HOUR_MS));

        let mut rng = StdRng::seed_from_u64(options.seed);
        let total: f64 = (1..=options.apps).map(|k| 1.0 / f64::from(k)).sum();
        let mut share_to = 0.0;
        let apps = (1..=options.apps)
            .map(|k| {
                let share = 1.0 / f64::from(k) / total;
                share_to += share;
                let sessions = options.events as f64 * share;
                App {
                    appid: i64::from(k),
                    share_to: if k == options.apps { 1.0 } else { share_to },
                    rooms: (sessions / 1_000.0).clamp(10.0, 100_000.0) as u32,
                    users: (sessions / 25.0).clamp(20.0, 5_000_000.0) as u64,
                    room_salt: rng.gen(),
                    user_salt: rng.gen(),
                }
            })
            .collect();

        let minutes = (end_ms - start_ms) / MINUTE_MS;
        let mut sum = 0.0;
        let weight_to = (0..minutes)
            .map(|m| {
                let at = start_ms + m * MINUTE_MS;
                sum += minute_weight(at, incident);
                sum
            })
            .collect();
        Self {
            events: options.events,
            seed: options.seed,
            chunk_rows: options.chunk_rows.max(1),
            start_ms,
            end_ms,
            incident,
            apps,
            weight_to,
            nicknames: NICKNAMES.iter().map(|s| copy_escape(s)).collect(),
        }
    }

    /// Logouts in minute `m`: the rounded cumulative target of minute m minus that of m - 1,
    /// so the minutes sum to exactly `events`.
    pub(super) fn logouts_in_minute(&self, m: usize) -> u64 {
        let total = *self.weight_to.last().expect("at least one day");
        let upto = |m: usize| (self.events as f64 * self.weight_to[m] / total).round() as u64;
        let to = if m + 1 == self.weight_to.len() {
            self.events
        } else {
            upto(m)
        };
        let from = if m == 0 { 0 } else { upto(m - 1) };
        to.saturating_sub(from)
    }

    /// The first day of each UTC month the logouts fall in.
    pub(super) fn months(&self) -> Vec<NaiveDate> {
        let month = |ms: i64| {
            let day = utc(ms).date_naive();
            NaiveDate::from_ymd_opt(day.year(), day.month(), 1).expect("a valid month")
        };
        let last = month(self.end_ms - 1);
        let mut months = vec![month(self.start_ms)];
        while let Some(next) = months
            .last()
            .and_then(|m| m.checked_add_months(chrono::Months::new(1)))
            .filter(|next| *next <= last)
        {
            months.push(next);
        }
        months
    }

    pub(super) fn open_now(&self) -> u64 {
        (self.events / 2_000).max(1)
    }

    pub(super) fn open_stale(&self) -> u64 {
        self.events / 5_000
    }

    pub(super) fn expected_logins(&self) -> u64 {
        (self.events as f64 * LOGIN_SHARE) as u64 + self.open_now() + self.open_stale()
    }
}

/// Relative traffic in the minute starting at `at_ms`: a daily cycle peaking at 20:00 UTC
/// (a quarter of the peak at 08:00), a quarter more on weekends, three times more in the
/// incident hour.
fn minute_weight(at_ms: i64, incident: Option<(i64, i64)>) -> f64 {
    let hour = (at_ms.rem_euclid(DAY_MS)) as f64 / HOUR_MS as f64;
    let daily = 0.25 + 0.75 * (0.5 + 0.5 * (std::f64::consts::TAU * (hour - 20.0) / 24.0).cos());
    // 1970-01-01 was a Thursday: (days + 4) % 7 is 0 on Sundays, 6 on Saturdays.
    let weekday = (at_ms.div_euclid(DAY_MS) + 4).rem_euclid(7);
    let weekend = if weekday == 0 || weekday == 6 {
        1.25
    } else {
        1.0
    };
    let spike = match incident {
        Some((from, to)) if (from..to).contains(&at_ms) => 3.0,
        _ => 1.0,
    };
    daily * weekend * spike
}

pub(super) fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .expect("seed times are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_share_out_exactly_the_events_with_a_daily_cycle() {
        let mut options = SeedOptions::new(123_457);
        options.days = 3;
        let plan = Plan::new(&options);
        let counts: Vec<u64> = (0..plan.weight_to.len())
            .map(|m| plan.logouts_in_minute(m))
            .collect();
        assert_eq!(counts.len(), 3 * 1440);
        assert_eq!(counts.iter().sum::<u64>(), 123_457);
        let at_hour = |h: i64| {
            let m = (0..counts.len())
                .find(|&m| (plan.start_ms + m as i64 * MINUTE_MS).rem_euclid(DAY_MS) == h * HOUR_MS)
                .unwrap();
            counts[m..m + 60].iter().sum::<u64>()
        };
        assert!(at_hour(20) > 2 * at_hour(8), "evenings are busier");
        assert!(plan.incident.is_some());
        assert_eq!(plan.months().first().unwrap().day(), 1);
        let shares: Vec<f64> = plan.apps.iter().map(|a| a.share_to).collect();
        assert_eq!(shares.len(), 3);
        assert_eq!(*shares.last().unwrap(), 1.0);
    }
}
