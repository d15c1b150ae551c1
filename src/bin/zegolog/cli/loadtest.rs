//! `zegolog loadtest`: its flags, checked into a [`LoadtestConfig`] for
//! [`zegolog::tools::loadtest::run`], and the report it prints.

use anyhow::bail;
use clap::{Args, ValueEnum};

use zegolog::tools::loadtest::LoadtestConfig;

#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// The callback URL of the zegolog deployment to load.
    #[arg(
        long,
        env = "ZEGOLOG_LOADTEST_URL",
        default_value = "http://127.0.0.1:8080/zego/callback"
    )]
    pub url: String,

    /// The callback secret zegolog verifies this appid with: every request is signed with it,
    /// as ZEGOCLOUD does. Prefer the environment variable: flags show in the process list.
    #[arg(long, env = "ZEGOLOG_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// The appid the callbacks name.
    #[arg(long, env = "ZEGOLOG_LOADTEST_APPID", default_value_t = 1,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub appid: i64,

    /// Concurrent connections; each sends one request after another.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub connections: u32,

    /// Stop sending after this many seconds [default: 10, unless --count is given].
    #[arg(long, conflicts_with = "count", value_parser = positive_secs)]
    pub duration_secs: Option<f64>,

    /// Stop after this many requests in all, instead of after a duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Share of requests (0 to 1) that are retries of an earlier callback: the same logout with
    /// a new timestamp, nonce and signature, as ZEGOCLOUD sends when it did not get a 2xx.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub duplicates: f64,

    /// Body encoding: JSON, or an URL-encoded form (ZEGOCLOUD's "POST/FORM" mode).
    #[arg(long, value_enum, default_value_t = BodyEncoding::Json)]
    pub encoding: BodyEncoding,

    /// After the load, check that the database holds every acknowledged (2xx) logout exactly
    /// once and no logout this run never sent. Needs --database-url (or DATABASE_URL).
    #[arg(long)]
    pub verify: bool,

    /// The PostgreSQL zegolog writes to, for --verify.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// How long --verify waits for acknowledged logouts to appear (zegolog may still be
    /// draining its spool), in seconds.
    #[arg(long, default_value_t = 120)]
    pub verify_timeout_secs: u64,

    /// Give up on a request after this many seconds (counted as a transport error).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,

    /// Seed for reproducible traffic: the same rooms, users, mix and order. Session ids still
    /// get a fresh range every run, so that two runs never collide in the database.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// [`zegolog::tools::loadtest::BodyEncoding`] as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BodyEncoding {
    /// `application/json`, every value a JSON string.
    Json,
    /// `application/x-www-form-urlencoded`, values percent-encoded.
    Form,
}

impl From<BodyEncoding> for zegolog::tools::loadtest::BodyEncoding {
    fn from(encoding: BodyEncoding) -> Self {
        match encoding {
            BodyEncoding::Json => Self::Json,
            BodyEncoding::Form => Self::Form,
        }
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("`{s}` is not a number from 0 to 1")),
    }
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f.is_finite() => Ok(f),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

impl LoadtestArgs {
    /// The load to send: a secret is needed, and `--verify` needs the database.
    fn config(self) -> anyhow::Result<LoadtestConfig> {
        let Some(secret) = self.secret.filter(|s| !s.is_empty()) else {
            bail!(
                "no callback secret: set ZEGOLOG_SECRET (or --secret) to the secret zegolog \
                 verifies appid {} with",
                self.appid
            );
        };
        let verify_database_url = match (self.verify, self.database_url) {
            (true, None) => bail!(
                "--verify needs the database zegolog writes to: set DATABASE_URL or --database-url"
            ),
            (true, Some(url)) => Some(url),
            (false, _) => None,
        };
        Ok(LoadtestConfig {
            url: self.url,
            secret,
            appid: self.appid,
            connections: self.connections,
            duration_secs: self.duration_secs,
            count: self.count,
            duplicates: self.duplicates,
            encoding: self.encoding.into(),
            verify_database_url,
            verify_timeout_secs: self.verify_timeout_secs,
            request_timeout_secs: self.request_timeout_secs,
            seed: self.seed,
        })
    }
}

/// `zegolog loadtest`: the report on stdout; a failed `--verify` fails the command.
pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    let report = zegolog::tools::loadtest::run(&args.config()?).await?;
    println!("{report}");
    if !report.verified_ok() {
        bail!("verification failed: the database does not hold exactly the acknowledged callbacks");
    }
    Ok(())
}
