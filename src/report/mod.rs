//! `zegolog report`: the essentials of an app (or all apps) over a range of days (in the
//! deployment's reporting time zone), for people
//! who do not open psql: daily session counts and duration percentiles, disconnect reasons with
//! their shares, and the rooms and users with the most abnormal disconnects.
//!
//! Read-only, and it reads views only (`session_duration_daily`, `logout_reasons_daily`,
//! `session_durations`), so it runs as a role made by `zegolog grant-analyst` too. It does not
//! migrate the database. The queries are [`crate::views`]' ([`views::days`],
//! [`views::incident`]); this module turns their rows into sections and prints them.
//!
//! Every section is first a [`Grid`] of typed cells, and the three formats render that one grid:
//! a table for the terminal (free text sanitised and shortened), CSV and JSON (values as stored,
//! same column names in both).
//!
//! Errors are `anyhow`: this is command-line glue, like the binary's command line (`src/bin/zegolog`).
//!
//! Here: the command's configuration ([`ReportConfig`]; its flags are the binary's), the range
//! it covers ([`ReportQuery`]) and [`run`]. Beside it:
//! `days.rs`, the daily report's sections from [`views::days`] ([`Report`]); `incident.rs`, the
//! incident view of `--last` ([`IncidentReport`]); `grid.rs`, the [`Grid`] both are made of and
//! its three renderings.

use std::io::Write;

use anyhow::{bail, Context};
use chrono::{Days, NaiveDate};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::views;

mod days;
mod grid;
mod incident;

pub use days::Report;
pub use grid::{Cell, Column, Grid};
pub use incident::{IncidentQuery, IncidentReport};

/// What `zegolog report` prints, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportConfig {
    pub kind: ReportKind,
    pub format: Format,
    /// Only this section; one of the kind's ([`SectionName::ALL`] or [`SectionName::INCIDENT`]).
    pub section: Option<SectionName>,
}

/// The daily report or the incident view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportKind {
    /// Days of the reporting time zone, which the database must cut its days in: the range
    /// [`ReportQuery::new`] makes of `from` and `to`.
    Days {
        time_zone: String,
        appid: Option<i64>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        top: u32,
    },
    /// The last hours, per bucket.
    Incident(IncidentQuery),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The sections of a report, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionName {
    /// Per UTC day and app: sessions and duration percentiles.
    Daily,
    /// Per app: logouts by disconnect reason over the range, with shares.
    Reasons,
    /// Rooms with the most abnormal disconnects.
    Rooms,
    /// Users with the most abnormal disconnects.
    Users,
    /// With --last: per bucket and reason, logouts, share, usual share and lift.
    Buckets,
    /// With --last: per reason over the window, share, usual share, lift and peak lift.
    Lift,
    /// With --last: per bucket, the most and fewest users online in a minute.
    Online,
}

impl SectionName {
    pub const ALL: [Self; 4] = [Self::Daily, Self::Reasons, Self::Rooms, Self::Users];
    /// The sections of `report --last`.
    pub const INCIDENT: [Self; 5] = [
        Self::Buckets,
        Self::Lift,
        Self::Online,
        Self::Rooms,
        Self::Users,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Reasons => "reasons",
            Self::Rooms => "rooms",
            Self::Users => "users",
            Self::Buckets => "buckets",
            Self::Lift => "lift",
            Self::Online => "online",
        }
    }
}

/// What a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    pub appid: Option<i64>,
    /// First UTC day, included.
    pub from: NaiveDate,
    /// Last UTC day, included.
    pub to: NaiveDate,
    /// Rooms and users listed.
    pub top: u32,
}

impl ReportQuery {
    /// The range of the command line: `--to` defaults to today (UTC), `--from` to six days
    /// before `--to` (seven days in all).
    pub fn new(
        appid: Option<i64>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        top: u32,
        today: NaiveDate,
    ) -> anyhow::Result<Self> {
        let to = to.unwrap_or(today);
        let from = match from {
            Some(from) => from,
            None => to
                .checked_sub_days(Days::new(6))
                .context("--to is too early")?,
        };
        if from > to {
            bail!("--from {from} is after --to {to}: the range is inclusive, from the first day to the last");
        }
        Ok(Self {
            appid,
            from,
            to,
            top,
        })
    }

    /// The apps and days the views are asked about.
    fn span(&self) -> views::days::Span {
        views::days::Span {
            appid: self.appid,
            from: self.from,
            to: self.to,
        }
    }

    fn scope(&self) -> String {
        match self.appid {
            Some(appid) => format!("appid {appid}"),
            None => "all apps".to_owned(),
        }
    }
}

/// `zegolog report` on the database at `database_url`, printed on standard output.
pub async fn run(config: &ReportConfig, database_url: &str) -> anyhow::Result<()> {
    let (time_zone, appid, from, to, top) = match &config.kind {
        ReportKind::Incident(query) => {
            let mut conn = connect(database_url).await?;
            let report = IncidentReport::load(&mut conn, query).await?;
            let _ = conn.close().await;
            let mut out = std::io::stdout().lock();
            report.render(config.format, config.section, &mut out)?;
            out.flush()?;
            return Ok(());
        }
        ReportKind::Days {
            time_zone,
            appid,
            from,
            to,
            top,
        } => (time_zone, *appid, *from, *to, *top),
    };
    let mut conn = connect(database_url).await?;
    // Days are the deployment's: refuse to report another zone's under its name.
    let (zone, today) = views::today(&mut conn)
        .await
        .context("reading the reporting time zone (is the database migrated?)")?;
    if zone != *time_zone {
        return Err(crate::time_zone::ZoneError::Mismatch {
            database: zone,
            wanted: time_zone.clone(),
        }
        .into());
    }
    let query = ReportQuery::new(appid, from, to, top, today)?;
    let report = Report::load(&mut conn, &query).await?;
    let _ = conn.close().await;
    let mut out = std::io::stdout().lock();
    report.render(config.format, config.section, &mut out)?;
    out.flush()?;
    Ok(())
}

async fn connect(database_url: &str) -> anyhow::Result<PgConnection> {
    let options: PgConnectOptions = database_url
        .parse()
        .context("the database URL is not valid")?;
    PgConnection::connect_with(&options.application_name("zegolog report"))
        .await
        .context("connecting to PostgreSQL")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn default_range_is_the_last_seven_days() {
        let q = ReportQuery::new(None, None, None, 10, day("2024-03-10")).unwrap();
        assert_eq!((q.from, q.to), (day("2024-03-04"), day("2024-03-10")));
        let q =
            ReportQuery::new(None, None, Some(day("2024-03-01")), 10, day("2024-03-10")).unwrap();
        assert_eq!(q.from, day("2024-02-24"));
        assert!(ReportQuery::new(
            None,
            Some(day("2024-03-02")),
            Some(day("2024-03-01")),
            10,
            day("2024-03-10")
        )
        .is_err());
    }
}
