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

use std::fmt::Write as _;
use std::io::Write;

use anyhow::{bail, Context};
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde_json::{json, Map, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::database::DatabaseArgs;
use crate::views::{self, days, By};

mod incident;

pub use incident::{IncidentQuery, IncidentReport};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub zone: crate::time_zone::TimeZoneArgs,

    /// Only this application (ZEGOCLOUD appid). Without it: every app, each on its own rows.
    #[arg(long)]
    pub appid: Option<i64>,

    /// First day of the report (in the reporting time zone), included (YYYY-MM-DD). Default:
    /// six days before --to (seven days in all).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<NaiveDate>,

    /// Last day of the report (in the reporting time zone), included (YYYY-MM-DD). Default:
    /// today there.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<NaiveDate>,

    /// `table` for a terminal; `csv` (RFC 4180; without --section every section is its own
    /// CSV block, introduced by a `# section: NAME` line and followed by an empty line); `json`
    /// (one object with an array per section).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Only this section (with --format csv: one plain CSV table, ready for a spreadsheet).
    #[arg(long, value_enum)]
    pub section: Option<SectionName>,

    /// How many rooms and how many users to list.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub top: u32,

    /// The incident view instead of days: the last hours up to --until (`1h`, `6h`, `24h`, or
    /// minutes such as `90m`; at most 24h), per bucket: logouts by reason with each reason's lift
    /// against its usual share, users online, and the worst rooms and users. Sections
    /// buckets, lift, online, rooms, users.
    #[arg(long, value_name = "DURATION", value_parser = crate::views::incident::parse_last,
          conflicts_with_all = ["from", "to"])]
    pub last: Option<std::time::Duration>,

    /// Bucket width with --last: `1m` or `5m`.
    #[arg(long, value_parser = crate::views::incident::Bucket::parse, default_value = "5m", requires = "last")]
    pub bucket: crate::views::incident::Bucket,

    /// End of the --last window (RFC 3339, e.g. 2024-05-01T10:00:00Z), rounded up to a bucket
    /// boundary. Default: now.
    #[arg(long, value_name = "TIME", requires = "last")]
    pub until: Option<DateTime<chrono::FixedOffset>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The sections of a report, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
    fn span(&self) -> days::Span {
        days::Span {
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
pub async fn run(args: &ReportArgs, database_url: &str) -> anyhow::Result<()> {
    if let Some(last) = args.last {
        let query = IncidentQuery {
            appid: args.appid,
            last,
            bucket: args.bucket,
            until: args.until.map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
            top: args.top,
        };
        if let Some(section) = args.section.filter(|s| !SectionName::INCIDENT.contains(s)) {
            bail!(
                "--section {} is a section of the daily report; with --last the sections are \
                 buckets, lift, online, rooms and users",
                section.as_str()
            );
        }
        let mut conn = connect(database_url).await?;
        let report = IncidentReport::load(&mut conn, &query).await?;
        let _ = conn.close().await;
        let mut out = std::io::stdout().lock();
        report.render(args.format, args.section, &mut out)?;
        out.flush()?;
        return Ok(());
    }
    if let Some(section) = args.section.filter(|s| !SectionName::ALL.contains(s)) {
        bail!(
            "--section {} is a section of the incident report: add --last (say --last 6h)",
            section.as_str()
        );
    }
    let mut conn = connect(database_url).await?;
    // Days are the deployment's: refuse to report another zone's under its name.
    let (zone, today) = views::today(&mut conn)
        .await
        .context("reading the reporting time zone (is the database migrated?)")?;
    if zone != args.zone.time_zone {
        return Err(crate::time_zone::ZoneError::Mismatch {
            database: zone,
            wanted: args.zone.time_zone.clone(),
        }
        .into());
    }
    let query = ReportQuery::new(args.appid, args.from, args.to, args.top, today)?;
    let report = Report::load(&mut conn, &query).await?;
    let _ = conn.close().await;
    let mut out = std::io::stdout().lock();
    report.render(args.format, args.section, &mut out)?;
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

// ---------------------------------------------------------------------------------------------
// One grid, three formats
// ---------------------------------------------------------------------------------------------

static EMPTY: Grid = Grid {
    columns: Vec::new(),
    rows: Vec::new(),
};

/// One section: named columns and typed cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The name in CSV headers and JSON keys.
    pub name: &'static str,
    /// The heading in a terminal table.
    pub label: &'static str,
}

impl Column {
    fn new(name: &'static str, label: &'static str) -> Self {
        Self { name, label }
    }
}

/// A value, typed so that each format can show it its way.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(i64),
    /// A statistic (seconds, minutes); `None` when there is nothing to measure.
    Number(Option<f64>),
    /// A fraction between 0 and 1: a percentage in a table, the fraction in CSV and JSON.
    Share(f64),
    /// A share that may be unknown (a usual share where there was no baseline).
    MaybeShare(Option<f64>),
    /// A lift: `×2.50` in a table, the number in CSV and JSON; `None` ("new") when there is no
    /// usual share to divide by.
    Lift(Option<f64>),
    Text(String),
    Date(NaiveDate),
    Time(Option<DateTime<Utc>>),
}

/// The longest free text (room id, user account) a table shows; CSV and JSON keep it whole.
const TABLE_TEXT_CHARS: usize = 40;

impl Cell {
    fn table_text(&self) -> String {
        match self {
            Self::Int(n) => n.to_string(),
            Self::Number(Some(s)) => format!("{s:.1}"),
            Self::Number(None) | Self::Time(None) => "-".to_owned(),
            Self::Share(share) | Self::MaybeShare(Some(share)) => {
                format!("{:.1}%", share * 100.0)
            }
            Self::MaybeShare(None) => "-".to_owned(),
            Self::Lift(Some(lift)) => format!("×{lift:.2}"),
            Self::Lift(None) => "new".to_owned(),
            Self::Text(text) => terminal_safe(text, TABLE_TEXT_CHARS),
            Self::Date(day) => day.to_string(),
            Self::Time(Some(at)) => at.format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(
            self,
            Self::Int(_) | Self::Number(_) | Self::Share(_) | Self::MaybeShare(_) | Self::Lift(_)
        )
    }

    fn csv_text(&self) -> String {
        match self {
            Self::Int(n) => n.to_string(),
            Self::Number(Some(s)) => s.to_string(),
            Self::Number(None) | Self::Time(None) => String::new(),
            Self::Share(share) => share.to_string(),
            Self::MaybeShare(share) | Self::Lift(share) => {
                share.map(|s| s.to_string()).unwrap_or_default()
            }
            Self::Text(text) => text.clone(),
            Self::Date(day) => day.to_string(),
            Self::Time(Some(at)) => rfc3339(at),
        }
    }

    fn json(&self) -> Value {
        match self {
            Self::Int(n) => json!(n),
            Self::Number(s) => json!(s),
            Self::Share(share) => json!(share),
            Self::MaybeShare(share) | Self::Lift(share) => json!(share),
            Self::Text(text) => json!(text),
            Self::Date(day) => json!(day.to_string()),
            Self::Time(at) => json!(at.as_ref().map(rfc3339)),
        }
    }
}

fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Free text as a terminal may show it: control characters (an escape sequence in a room id
/// would drive the terminal) escaped, and cut to `max` characters.
fn terminal_safe(text: &str, max: usize) -> String {
    let mut safe = String::new();
    for c in text.chars() {
        if c.is_control() {
            safe.extend(c.escape_default());
        } else {
            safe.push(c);
        }
    }
    if safe.chars().count() > max {
        safe = safe.chars().take(max - 1).collect();
        safe.push('…');
    }
    safe
}

impl Grid {
    /// Aligned columns (numbers to the right), a rule under the headings; `(none)` when empty.
    pub fn to_table(&self) -> String {
        if self.rows.is_empty() {
            return "(none)\n".to_owned();
        }
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(Cell::table_text).collect())
            .collect();
        let numeric: Vec<bool> = (0..self.columns.len())
            .map(|i| self.rows.iter().all(|row| row[i].is_numeric()))
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                cells
                    .iter()
                    .map(|row| row[i].chars().count())
                    .chain([column.label.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, texts: &mut dyn Iterator<Item = &str>| {
            let mut first = true;
            let mut row = String::new();
            for (i, text) in texts.enumerate() {
                if !first {
                    row.push_str("  ");
                }
                first = false;
                let pad = widths[i].saturating_sub(text.chars().count());
                if numeric[i] {
                    row.extend(std::iter::repeat_n(' ', pad));
                    row.push_str(text);
                } else {
                    row.push_str(text);
                    row.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(row.trim_end());
            out.push('\n');
        };
        line(&mut out, &mut self.columns.iter().map(|c| c.label));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&mut out, &mut rule.iter().map(String::as_str));
        for row in &cells {
            line(&mut out, &mut row.iter().map(String::as_str));
        }
        out
    }

    /// RFC 4180: a header line, then one line per row; a field with a comma, a quote or a line
    /// break is quoted, its quotes doubled. Lines end in CRLF as the RFC says.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, fields: &mut dyn Iterator<Item = String>| {
            let fields: Vec<String> = fields.map(|f| csv_field(&f)).collect();
            let _ = write!(out, "{}\r\n", fields.join(","));
        };
        line(
            &mut out,
            &mut self.columns.iter().map(|c| c.name.to_owned()),
        );
        for row in &self.rows {
            line(&mut out, &mut row.iter().map(Cell::csv_text));
        }
        out
    }

    /// An array of objects, one per row, keyed by column name.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    Value::Object(
                        self.columns
                            .iter()
                            .zip(row)
                            .map(|(column, cell)| (column.name.to_owned(), cell.json()))
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
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

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
    }

    #[test]
    fn terminal_text_is_escaped_and_cut() {
        assert_eq!(terminal_safe("room\u{1b}[2J", 40), "room\\u{1b}[2J");
        assert_eq!(terminal_safe("abcdef", 4), "abc…");
        assert_eq!(terminal_safe("房间", 4), "房间");
    }
}
