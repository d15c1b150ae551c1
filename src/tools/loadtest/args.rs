//! `zegolog loadtest`'s flags.

use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
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

impl LoadtestArgs {
    /// The flags `zegolog bench` runs the load with: unique JSON logouts (no retries) for
    /// `duration` over `connections`, then `--verify` against `database_url`.
    pub fn for_bench(
        url: String,
        secret: String,
        connections: usize,
        duration: Duration,
        database_url: String,
    ) -> Self {
        Self {
            url,
            secret: Some(secret),
            appid: 1,
            connections: u32::try_from(connections).unwrap_or(u32::MAX).max(1),
            duration_secs: Some(duration.as_secs_f64()),
            count: None,
            duplicates: 0.0,
            encoding: BodyEncoding::Json,
            verify: true,
            database_url: Some(database_url),
            verify_timeout_secs: 120,
            request_timeout_secs: 30,
            seed: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BodyEncoding {
    /// `application/json`, every value a JSON string.
    Json,
    /// `application/x-www-form-urlencoded`, values percent-encoded.
    Form,
}

impl BodyEncoding {
    pub(super) fn mime(self) -> &'static str {
        match self {
            BodyEncoding::Json => "application/json",
            BodyEncoding::Form => "application/x-www-form-urlencoded",
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    #[test]
    fn flags_parse_with_defaults_and_refuse_nonsense() {
        Cli::command().debug_assert();
        let args = Cli::try_parse_from(["loadtest", "--secret", "s"])
            .unwrap()
            .args;
        assert_eq!(args.connections, 64);
        assert_eq!((args.count, args.duration_secs), (None, None));
        assert_eq!(args.encoding, BodyEncoding::Json);
        assert_eq!(args.duplicates, 0.0);
        assert!(Cli::try_parse_from(["loadtest", "--count", "5", "--duration-secs", "1"]).is_err());
        assert!(Cli::try_parse_from(["loadtest", "--duplicates", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["loadtest", "--connections", "0"]).is_err());
        let args = Cli::try_parse_from(["loadtest", "--encoding", "form", "--duplicates", "0.25"])
            .unwrap()
            .args;
        assert_eq!((args.encoding, args.duplicates), (BodyEncoding::Form, 0.25));
    }
}
