//! The daily report (`zegolog report` without `--last`): per day of the range, sessions and
//! duration percentiles; disconnect reasons with their shares; the rooms and users with the
//! most abnormal disconnects. One read-only transaction over [`crate::views::days`], each
//! section a [`Grid`].

use std::io::Write;

use anyhow::Context;
use serde_json::{json, Map, Value};
use sqlx::PgConnection;

use super::{Cell, Column, Format, Grid, ReportQuery, SectionName};
use crate::views::{self, days, By};

/// A loaded report: its range and its sections.
#[derive(Debug, Clone)]
pub struct Report {
    pub query: ReportQuery,
    /// The reporting time zone the days are cut in.
    pub time_zone: String,
    pub daily: Grid,
    pub reasons: Grid,
    pub rooms: Grid,
    pub users: Grid,
}

impl Report {
    /// Runs the report's queries (one read-only transaction, so the sections agree).
    pub async fn load(conn: &mut PgConnection, query: &ReportQuery) -> anyhow::Result<Self> {
        let mut tx = views::snapshot(conn).await?;
        let time_zone = crate::time_zone::database_zone(&mut *tx)
            .await
            .context("reading the reporting time zone (is the database migrated?)")?;
        let daily = daily(&mut tx, query)
            .await
            .context("reading session_duration_daily (is the database migrated?)")?;
        let reasons = reasons(&mut tx, query)
            .await
            .context("reading logout_reasons_daily")?;
        let rooms = offenders(&mut tx, query, By::Room)
            .await
            .context("reading session_durations")?;
        let users = offenders(&mut tx, query, By::User)
            .await
            .context("reading session_durations")?;
        tx.commit().await?;
        Ok(Self {
            query: query.clone(),
            time_zone,
            daily,
            reasons,
            rooms,
            users,
        })
    }

    pub fn section(&self, name: SectionName) -> &Grid {
        match name {
            SectionName::Daily => &self.daily,
            SectionName::Reasons => &self.reasons,
            SectionName::Rooms => &self.rooms,
            SectionName::Users => &self.users,
            SectionName::Buckets | SectionName::Lift | SectionName::Online => &EMPTY,
        }
    }

    /// Writes the report (or only `section`) in `format`.
    pub fn render(
        &self,
        format: Format,
        section: Option<SectionName>,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let names: Vec<SectionName> = match section {
            Some(name) => vec![name],
            None => SectionName::ALL.to_vec(),
        };
        match format {
            Format::Table => {
                writeln!(
                    out,
                    "zegolog report: {}, {} to {} ({} days, both included)",
                    self.query.scope(),
                    self.query.from,
                    self.query.to,
                    self.time_zone
                )?;
                for name in names {
                    writeln!(out)?;
                    out.write_all(self.title(name).as_bytes())?;
                    writeln!(out)?;
                    out.write_all(self.section(name).to_table().as_bytes())?;
                }
                Ok(())
            }
            Format::Csv if section.is_some() => {
                out.write_all(self.section(names[0]).to_csv().as_bytes())
            }
            Format::Csv => {
                // CRLF throughout, as in the CSV blocks themselves.
                for name in names {
                    write!(out, "# section: {}\r\n", name.as_str())?;
                    out.write_all(self.section(name).to_csv().as_bytes())?;
                    out.write_all(b"\r\n")?;
                }
                Ok(())
            }
            Format::Json => {
                let mut object = Map::new();
                object.insert("appid".into(), json!(self.query.appid));
                object.insert("from".into(), json!(self.query.from.to_string()));
                object.insert("to".into(), json!(self.query.to.to_string()));
                object.insert("time_zone".into(), json!(self.time_zone));
                for name in names {
                    object.insert(name.as_str().into(), self.section(name).to_json());
                }
                serde_json::to_writer_pretty(&mut *out, &Value::Object(object))?;
                writeln!(out)
            }
        }
    }

    fn title(&self, name: SectionName) -> String {
        match name {
            SectionName::Buckets | SectionName::Lift | SectionName::Online => String::new(),
            SectionName::Daily => {
                "Sessions per day (durations in seconds; percentiles nearest rank, within 1%)"
                    .into()
            }
            SectionName::Reasons => {
                "Disconnect reasons over the range (share of the app's logouts)".into()
            }
            SectionName::Rooms => format!(
                "Rooms with the most abnormal disconnects (any reason but normal; top {})",
                self.query.top
            ),
            SectionName::Users => format!(
                "Users with the most abnormal disconnects (any reason but normal; top {})",
                self.query.top
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sections, from the views
// ---------------------------------------------------------------------------------------------

/// Every day of the range for each app that had sessions in it (or the one app asked for),
/// days without sessions included: a quiet day is news during an incident.
async fn daily(conn: &mut PgConnection, query: &ReportQuery) -> sqlx::Result<Grid> {
    let rows = days::app_days(&mut *conn, query.span()).await?;
    Ok(Grid {
        columns: vec![
            Column::new("day", "day"),
            Column::new("appid", "appid"),
            Column::new("sessions", "sessions"),
            Column::new("avg_s", "avg s"),
            Column::new("p50_s", "p50 s"),
            Column::new("p90_s", "p90 s"),
            Column::new("p99_s", "p99 s"),
            Column::new("max_s", "max s"),
            Column::new("total_minutes", "total min"),
        ],
        rows: rows
            .into_iter()
            .map(|r| {
                vec![
                    Cell::Date(r.day),
                    Cell::Int(r.appid),
                    Cell::Int(r.sessions),
                    Cell::Number(r.avg_s),
                    Cell::Number(r.p50_s),
                    Cell::Number(r.p90_s),
                    Cell::Number(r.p99_s),
                    Cell::Number(r.max_s),
                    Cell::Number(Some(r.total_minutes)),
                ]
            })
            .collect(),
    })
}

/// The daily counts summed over the range; shares of each app's logouts in the range.
async fn reasons(conn: &mut PgConnection, query: &ReportQuery) -> sqlx::Result<Grid> {
    let rows = days::app_reasons(&mut *conn, query.span()).await?;
    Ok(Grid {
        columns: vec![
            Column::new("appid", "appid"),
            Column::new("reason", "reason"),
            Column::new("logouts", "logouts"),
            Column::new("share", "share"),
        ],
        rows: rows
            .into_iter()
            .map(|r| {
                vec![
                    Cell::Int(r.appid),
                    Cell::Text(r.reason),
                    Cell::Int(r.logouts),
                    Cell::Share(r.share),
                ]
            })
            .collect(),
    })
}

/// The rooms (or users) with the most logouts whose reason is not `normal` in the range, with
/// their logouts of every reason for scale.
async fn offenders(conn: &mut PgConnection, query: &ReportQuery, by: By) -> sqlx::Result<Grid> {
    let key = match by {
        By::Room => "room_id",
        By::User => "user_account",
    };
    let rows = days::offenders(&mut *conn, query.span(), by, query.top).await?;
    Ok(Grid {
        columns: vec![
            Column::new("appid", "appid"),
            Column::new(key, key),
            Column::new("abnormal", "abnormal"),
            Column::new("logouts", "logouts"),
            Column::new("abnormal_share", "abnormal %"),
            Column::new("heartbeat_timeout", "heartbeat"),
            Column::new("connection_lost", "conn lost"),
            Column::new("kicked_out", "kicked"),
            Column::new("token_expired", "token exp"),
            Column::new("unknown", "unknown"),
            Column::new("last_abnormal_at", "last abnormal (UTC)"),
        ],
        rows: rows
            .into_iter()
            .map(|r| {
                vec![
                    Cell::Int(r.appid),
                    Cell::Text(r.key),
                    Cell::Int(r.abnormal),
                    Cell::Int(r.logouts),
                    Cell::Share(r.abnormal as f64 / r.logouts as f64),
                    Cell::Int(r.heartbeat_timeout),
                    Cell::Int(r.connection_lost),
                    Cell::Int(r.kicked_out),
                    Cell::Int(r.token_expired),
                    Cell::Int(r.unknown),
                    Cell::Time(r.last_abnormal_at),
                ]
            })
            .collect(),
    })
}

/// What [`Report::section`] answers for a section of the incident report.
static EMPTY: Grid = Grid {
    columns: Vec::new(),
    rows: Vec::new(),
};
