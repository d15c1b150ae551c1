//! `zegolog report --last 6h --bucket 5m`: the incident view in the terminal, from
//! [`crate::views::incident`] (the same functions as `/dashboard/incident`), as the same [`Grid`]s as
//! the daily report, so the three formats come for free.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sqlx::PgConnection;

use super::{Cell, Column, Format, Grid, SectionName};
use crate::views::incident::{self, Bucket, Reasons, Window};
use crate::views::{self, By};

/// What an incident report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentQuery {
    /// One app; without it every app with data, each on its own rows.
    pub appid: Option<i64>,
    pub last: Duration,
    pub bucket: Bucket,
    /// The window ends at the bucket boundary at or after this.
    pub until: DateTime<Utc>,
    pub top: u32,
}

/// A loaded incident report.
#[derive(Debug, Clone)]
pub struct IncidentReport {
    pub query: IncidentQuery,
    /// The window of the first app (all apps share its bounds).
    pub window: Window,
    pub buckets: Grid,
    pub lift: Grid,
    pub online: Grid,
    pub rooms: Grid,
    pub users: Grid,
}

impl IncidentReport {
    /// Runs the queries in one read-only transaction, app by app.
    pub async fn load(conn: &mut PgConnection, query: &IncidentQuery) -> anyhow::Result<Self> {
        let mut tx = views::snapshot(conn).await?;
        let appids: Vec<i64> = match query.appid {
            Some(appid) => vec![appid],
            None => views::appids(&mut *tx)
                .await
                .context("listing the apps (is the database migrated?)")?,
        };
        let window = |appid| Window::ending(appid, query.last, query.bucket, query.until);
        let mut report = Self {
            query: query.clone(),
            window: window(query.appid.unwrap_or(0)),
            buckets: grid(&[
                ("appid", "appid"),
                ("bucket_start", "bucket (UTC)"),
                ("reason", "reason"),
                ("logouts", "logouts"),
                ("bucket_logouts", "of"),
                ("share", "share"),
                ("usual_share", "usual"),
                ("lift", "lift"),
            ]),
            lift: grid(&[
                ("appid", "appid"),
                ("reason", "reason"),
                ("logouts", "logouts"),
                ("share", "share"),
                ("usual_share", "usual"),
                ("lift", "lift"),
                ("peak_lift", "peak lift"),
            ]),
            online: grid(&[
                ("appid", "appid"),
                ("bucket_start", "bucket (UTC)"),
                ("users_online", "most online"),
                ("fewest_online", "fewest online"),
            ]),
            rooms: offender_grid("room_id", "room_id", "users"),
            users: offender_grid("user_account", "user_account", "rooms"),
        };
        for appid in appids {
            let w = window(appid);
            let rows = incident::reason_buckets(&mut *tx, &w)
                .await
                .context("reading incident_reasons (is the database migrated?)")?;
            let usual = incident::usual_shares(&mut *tx, &w)
                .await
                .context("reading reason_usual_shares")?;
            let reasons = Reasons::new(rows, usual);
            report.add_reasons(appid, &reasons);
            for b in incident::online(&mut *tx, &w)
                .await
                .context("reading incident_users_online")?
            {
                report.online.rows.push(vec![
                    Cell::Int(appid),
                    Cell::Time(Some(b.bucket_start)),
                    Cell::Int(b.users_online),
                    Cell::Int(b.fewest_online),
                ]);
            }
            for (by, grid) in [(By::Room, &mut report.rooms), (By::User, &mut report.users)] {
                for o in incident::offenders(&mut *tx, &w, by, query.top)
                    .await
                    .context("reading abnormal_rooms_between / abnormal_users_between")?
                {
                    grid.rows.push(vec![
                        Cell::Int(appid),
                        Cell::Text(o.key),
                        Cell::Int(o.abnormal),
                        Cell::Int(o.heartbeat_timeout),
                        Cell::Int(o.connection_lost),
                        Cell::Int(o.kicked_out),
                        Cell::Int(o.token_expired),
                        Cell::Int(o.others),
                        Cell::Time(Some(o.last_abnormal_at)),
                    ]);
                }
            }
        }
        tx.commit().await?;
        Ok(report)
    }

    fn add_reasons(&mut self, appid: i64, reasons: &Reasons) {
        for r in &reasons.rows {
            self.buckets.rows.push(vec![
                Cell::Int(appid),
                Cell::Time(Some(r.bucket_start)),
                Cell::Text(r.reason.clone()),
                Cell::Int(r.logouts),
                Cell::Int(r.bucket_logouts),
                Cell::Share(r.share),
                Cell::MaybeShare(r.usual_share),
                Cell::Lift(r.lift),
            ]);
        }
        for t in &reasons.totals {
            self.lift.rows.push(vec![
                Cell::Int(appid),
                Cell::Text(t.reason.clone()),
                Cell::Int(t.logouts),
                Cell::Share(t.share),
                Cell::MaybeShare(t.usual_share),
                Cell::Lift(t.lift),
                Cell::Lift(t.peak_lift),
            ]);
        }
    }

    pub fn section(&self, name: SectionName) -> Option<&Grid> {
        match name {
            SectionName::Buckets => Some(&self.buckets),
            SectionName::Lift => Some(&self.lift),
            SectionName::Online => Some(&self.online),
            SectionName::Rooms => Some(&self.rooms),
            SectionName::Users => Some(&self.users),
            SectionName::Daily | SectionName::Reasons => None,
        }
    }

    fn title(&self, name: SectionName) -> String {
        let top = self.query.top;
        match name {
            SectionName::Buckets => format!(
                "Logouts per {} bucket and reason (lift = share / usual share; usual: the {} \
                 UTC days before the window's first day)",
                self.query.bucket.as_str(),
                incident::USUAL_DAYS
            ),
            SectionName::Lift => "Reasons over the window against their usual share (peak \
                lift: the highest in a bucket with 5 or more of them)"
                .into(),
            SectionName::Online => {
                "Users online per bucket (most and fewest in any minute of it)".into()
            }
            SectionName::Rooms => {
                format!("Rooms with the most abnormal disconnects (reasons 1-4; top {top})")
            }
            SectionName::Users => {
                format!("Users with the most abnormal disconnects (reasons 1-4; top {top})")
            }
            SectionName::Daily | SectionName::Reasons => String::new(),
        }
    }

    /// Writes the report (or only `section`) in `format`, like [`super::Report::render`].
    pub fn render(
        &self,
        format: Format,
        section: Option<SectionName>,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let names: Vec<SectionName> = match section {
            Some(name) => vec![name],
            None => SectionName::INCIDENT.to_vec(),
        };
        let sections: Vec<(SectionName, &Grid)> = names
            .iter()
            .filter_map(|&name| self.section(name).map(|grid| (name, grid)))
            .collect();
        let scope = match self.query.appid {
            Some(appid) => format!("appid {appid}"),
            None => "all apps".to_owned(),
        };
        match format {
            Format::Table => {
                writeln!(
                    out,
                    "zegolog report: {scope}, incident view {} to {} UTC, {} buckets",
                    self.window.from.format("%Y-%m-%d %H:%M"),
                    self.window.to.format("%Y-%m-%d %H:%M"),
                    self.query.bucket.as_str()
                )?;
                for (name, grid) in sections {
                    writeln!(out)?;
                    writeln!(out, "{}", self.title(name))?;
                    out.write_all(grid.to_table().as_bytes())?;
                }
                Ok(())
            }
            Format::Csv if section.is_some() => match sections.first() {
                Some((_, grid)) => out.write_all(grid.to_csv().as_bytes()),
                None => Ok(()),
            },
            Format::Csv => {
                for (name, grid) in sections {
                    write!(out, "# section: {}\r\n", name.as_str())?;
                    out.write_all(grid.to_csv().as_bytes())?;
                    out.write_all(b"\r\n")?;
                }
                Ok(())
            }
            Format::Json => {
                let mut object = Map::new();
                object.insert("appid".into(), json!(self.query.appid));
                object.insert(
                    "from".into(),
                    json!(super::grid::rfc3339(&self.window.from)),
                );
                object.insert("to".into(), json!(super::grid::rfc3339(&self.window.to)));
                object.insert("bucket".into(), json!(self.query.bucket.as_str()));
                object.insert("usual_days".into(), json!(incident::USUAL_DAYS));
                for (name, grid) in sections {
                    object.insert(name.as_str().into(), grid.to_json());
                }
                serde_json::to_writer_pretty(&mut *out, &Value::Object(object))?;
                writeln!(out)
            }
        }
    }
}

fn grid(columns: &[(&'static str, &'static str)]) -> Grid {
    Grid {
        columns: columns
            .iter()
            .map(|&(name, label)| Column::new(name, label))
            .collect(),
        rows: Vec::new(),
    }
}

fn offender_grid(key: &'static str, label: &'static str, others: &'static str) -> Grid {
    grid(&[
        ("appid", "appid"),
        (key, label),
        ("abnormal", "abnormal"),
        ("heartbeat_timeout", "heartbeat"),
        ("connection_lost", "conn lost"),
        ("kicked_out", "kicked"),
        ("token_expired", "token exp"),
        (others, others),
        ("last_abnormal_at", "last abnormal (UTC)"),
    ])
}
