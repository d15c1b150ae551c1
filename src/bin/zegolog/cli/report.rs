//! `zegolog report`: its flags, and their checks into a [`ReportConfig`] for
//! [`zegolog::report::run`].

use anyhow::bail;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, ValueEnum};

use zegolog::report::{IncidentQuery, ReportConfig, ReportKind};
use zegolog::views::incident::Bucket;

use super::database::{DatabaseArgs, TimeZoneArgs};

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub zone: TimeZoneArgs,

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
    #[arg(long, value_name = "DURATION", value_parser = zegolog::views::incident::parse_last,
          conflicts_with_all = ["from", "to"])]
    pub last: Option<std::time::Duration>,

    /// Bucket width with --last: `1m` or `5m`.
    #[arg(long, value_parser = Bucket::parse, default_value = "5m", requires = "last")]
    pub bucket: Bucket,

    /// End of the --last window (RFC 3339, e.g. 2024-05-01T10:00:00Z), rounded up to a bucket
    /// boundary. Default: now.
    #[arg(long, value_name = "TIME", requires = "last")]
    pub until: Option<DateTime<chrono::FixedOffset>>,
}

/// [`zegolog::report::Format`] as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl From<Format> for zegolog::report::Format {
    fn from(format: Format) -> Self {
        match format {
            Format::Table => Self::Table,
            Format::Csv => Self::Csv,
            Format::Json => Self::Json,
        }
    }
}

/// [`zegolog::report::SectionName`] as a flag value: the sections of a report, in the order they
/// are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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

impl From<SectionName> for zegolog::report::SectionName {
    fn from(section: SectionName) -> Self {
        match section {
            SectionName::Daily => Self::Daily,
            SectionName::Reasons => Self::Reasons,
            SectionName::Rooms => Self::Rooms,
            SectionName::Users => Self::Users,
            SectionName::Buckets => Self::Buckets,
            SectionName::Lift => Self::Lift,
            SectionName::Online => Self::Online,
        }
    }
}

impl ReportArgs {
    /// The report these flags ask for: `--section` must be one of the sections of the daily
    /// report, or with `--last` of the incident view's.
    fn config(&self) -> anyhow::Result<ReportConfig> {
        let section = self.section.map(zegolog::report::SectionName::from);
        let kind = match self.last {
            Some(last) => {
                if let Some(section) =
                    section.filter(|s| !zegolog::report::SectionName::INCIDENT.contains(s))
                {
                    bail!(
                        "--section {} is a section of the daily report; with --last the sections \
                         are buckets, lift, online, rooms and users",
                        section.as_str()
                    );
                }
                ReportKind::Incident(IncidentQuery {
                    appid: self.appid,
                    last,
                    bucket: self.bucket,
                    until: self.until.map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
                    top: self.top,
                })
            }
            None => {
                if let Some(section) =
                    section.filter(|s| !zegolog::report::SectionName::ALL.contains(s))
                {
                    bail!(
                        "--section {} is a section of the incident report: add --last (say --last 6h)",
                        section.as_str()
                    );
                }
                ReportKind::Days {
                    time_zone: self.zone.time_zone.clone(),
                    appid: self.appid,
                    from: self.from,
                    to: self.to,
                    top: self.top,
                }
            }
        };
        Ok(ReportConfig {
            kind,
            format: self.format.into(),
            section,
        })
    }
}

/// `zegolog report`: the flags checked once the database is open, then the report printed.
pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    args.database
        .with(async |database| zegolog::report::run(&args.config()?, &database.url).await)
        .await
}
