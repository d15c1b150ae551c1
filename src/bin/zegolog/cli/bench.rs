//! `zegolog bench`: its flags, into the [`BenchConfig`] of [`zegolog::tools::bench::run`].

use clap::{Args, ValueEnum};

use zegolog::tools::bench::BenchConfig;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent HTTP connections of the load generator: one run per value.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    pub connections: Vec<usize>,

    /// How long each load runs, in seconds.
    #[arg(long, default_value_t = 15)]
    pub duration_secs: u64,

    /// How long pgbench measures each of PostgreSQL's ceilings, in seconds.
    #[arg(long, default_value_t = 10)]
    pub pgbench_secs: u64,

    /// pgbench clients (each running batches of 100 rows).
    #[arg(long, default_value_t = 8)]
    pub pgbench_clients: usize,

    /// A PostgreSQL server to benchmark on (a database `zegolog_bench` is created and dropped).
    /// Without one, a private PostgreSQL is started in a temporary directory. PostgreSQL's CPU
    /// is measured when its data directory is on this machine and readable.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Print the pgbench script of one ceiling and exit, to run or EXPLAIN it by hand
    /// (`pgbench -f FILE`; its `:base` is the only variable).
    #[arg(long, value_enum)]
    pub print_script: Option<Ceiling>,
}

/// [`zegolog::tools::bench::Ceiling`] as a flag value: which statement pgbench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ceiling {
    /// 100-row batches into a table with one unique key.
    Plain,
    /// zegolog's own write statement with 100 generated logouts.
    WriteBatch,
}

impl From<Ceiling> for zegolog::tools::bench::Ceiling {
    fn from(ceiling: Ceiling) -> Self {
        match ceiling {
            Ceiling::Plain => Self::Plain,
            Ceiling::WriteBatch => Self::WriteBatch,
        }
    }
}

/// `zegolog bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let config = BenchConfig {
        connections: args.connections,
        duration_secs: args.duration_secs,
        pgbench_secs: args.pgbench_secs,
        pgbench_clients: args.pgbench_clients,
        database_url: args.database_url,
        print_script: args.print_script.map(Into::into),
    };
    zegolog::tools::bench::run(&config).await
}
