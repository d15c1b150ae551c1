//! `zegolog bench-queries`: its flags, checked into a [`BenchQueriesConfig`] for
//! [`zegolog::tools::bench_queries::run`].

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use zegolog::tools::bench_queries::BenchQueriesConfig;
use zegolog::tools::seed;

#[derive(Debug, Args)]
pub struct BenchQueriesArgs {
    /// Logouts to seed.
    #[arg(long, default_value_t = seed::DEFAULT_EVENTS,
          value_parser = clap::value_parser!(u64).range(seed::EVENTS_RANGE))]
    pub events: u64,

    /// Apps to seed (appid 1 is the busiest; the queries ask about the busiest app).
    #[arg(long, default_value_t = seed::DEFAULT_APPS,
          value_parser = clap::value_parser!(u32).range(seed::APPS_RANGE))]
    pub apps: u32,

    /// Days of traffic to seed, ending now.
    #[arg(long, default_value_t = seed::DEFAULT_DAYS,
          value_parser = clap::value_parser!(u32).range(seed::DAYS_RANGE))]
    pub days: u32,

    /// Seed of the traffic generator, for the same rooms, users and mix on every run.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Timed runs of each query (after one warm-up run).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,

    /// Leave the database (and a temporary private PostgreSQL's directory) in place.
    #[arg(long)]
    pub keep: bool,

    /// The reporting time zone to cut days in (an IANA name). A fresh database takes it before
    /// seeding; with --no-seed a database in another zone is moved to it first (its rollups
    /// rebuilt, with the time it took).
    #[arg(long, default_value = zegolog::time_zone::DEFAULT)]
    pub time_zone: String,

    /// Do not seed: time the queries on the database `zegolog_bench_queries` as it is (from an
    /// earlier `--keep` run). Needs DATABASE_URL or --data-dir.
    #[arg(long)]
    pub no_seed: bool,

    /// A PostgreSQL server to benchmark on (the database `zegolog_bench_queries` is created on it).
    /// Without one, a private PostgreSQL runs under --data-dir or in a temporary directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Where the private PostgreSQL keeps its files when no DATABASE_URL is given
    /// [default: a temporary directory, removed at the end unless --keep].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// A directory of documented queries (`*.sql`) to time instead of the `sql/` files built into
    /// the binary, read at run time.
    #[arg(long)]
    pub sql_dir: Option<PathBuf>,
}

impl BenchQueriesArgs {
    /// What to benchmark: `--no-seed` needs a database from an earlier run.
    fn config(self) -> anyhow::Result<BenchQueriesConfig> {
        if self.no_seed && self.database_url.is_none() && self.data_dir.is_none() {
            bail!(
                "--no-seed reuses the database of an earlier --keep run: give its DATABASE_URL \
                 or --data-dir"
            );
        }
        Ok(BenchQueriesConfig {
            events: self.events,
            apps: self.apps,
            days: self.days,
            seed: self.seed,
            runs: self.runs,
            keep: self.keep,
            time_zone: self.time_zone,
            no_seed: self.no_seed,
            database_url: self.database_url,
            data_dir: self.data_dir,
            sql_dir: self.sql_dir,
        })
    }
}

/// `zegolog bench-queries`.
pub async fn run(args: BenchQueriesArgs) -> anyhow::Result<()> {
    zegolog::tools::bench_queries::run(&args.config()?).await
}
