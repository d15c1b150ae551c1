//! `zegolog serve`: its flags, the server's configuration they make (a missing secret or a bad
//! URL fails here, before anything starts), and the command: the port bound, then
//! [`zegolog::server::run`] until SIGTERM or ctrl-c.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::builder::TypedValueParser as _;
use clap::Args;
use tokio::net::TcpListener;

use zegolog::ingest::BatchConfig;
use zegolog::notifier::{NotifierConfig, WebhookUrl};
use zegolog::outcome::ReusePolicy;
use zegolog::server::{ServerConfig, SpoolConfig};
use zegolog::signature::{Secrets, Verifier};
use zegolog::spool::SpoolLimits;
use zegolog::store::PoolConfig;
use zegolog::upkeep::{Retention, UpkeepConfig};

use super::database::{DatabaseArgs, TimeZoneArgs};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub zone: TimeZoneArgs,

    /// Address and port to listen on.
    #[arg(long, env = "ZEGOLOG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub clients: ClientArgs,

    /// The callback secret from the ZEGOCLOUD console, for every appid not in --secrets.
    /// Prefer the environment variable: flags show in the process list.
    #[arg(long, env = "ZEGOLOG_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Secrets per appid, for several apps in one store: `appid=secret,appid=secret`.
    #[arg(long, env = "ZEGOLOG_SECRETS", hide_env_values = true)]
    pub secrets: Option<String>,

    /// Refuse callbacks whose timestamp is further than this from our clock, in seconds
    /// (0 turns the check off).
    #[arg(long, env = "ZEGOLOG_MAX_SKEW_SECS", default_value_t = 600)]
    pub max_skew_secs: u64,

    /// Accept callbacks without checking their signature. For local trials only: anyone who
    /// can reach zegolog can then write into the database. Warns at start and on every request.
    #[arg(long, env = "ZEGOLOG_INSECURE_SKIP_VERIFY")]
    pub insecure_skip_verify: bool,

    /// Most connections zegolog opens to PostgreSQL.
    #[arg(long, env = "ZEGOLOG_MAX_CONNECTIONS", default_value_t = 16)]
    pub max_connections: u32,

    /// Most callbacks written in one statement and transaction (group commit).
    #[arg(long, env = "ZEGOLOG_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,

    /// How long a batch waits for more callbacks once it has one, in milliseconds. Under load
    /// batches fill while the previous commit is in flight, so this can stay small.
    #[arg(long, env = "ZEGOLOG_BATCH_MAX_WAIT_MS", default_value_t = 1)]
    pub batch_max_wait_ms: u64,

    /// Batches written concurrently (each holds one database connection).
    #[arg(long, env = "ZEGOLOG_WRITERS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub writers: u32,

    /// Size bound of the durable spool under the data dir that keeps callbacks while PostgreSQL
    /// is unreachable, in MiB. When it is full zegolog answers 503. 0 turns the spool off: an
    /// outage is then answered 503 at once.
    #[arg(long, env = "ZEGOLOG_SPOOL_MAX_MB", default_value_t = 1024)]
    pub spool_max_mb: u64,

    /// Free space the spool leaves on its filesystem, in MiB: below it zegolog answers 503
    /// rather than spool, so that a full disk never breaks the spool (or what else lives there).
    #[arg(long, env = "ZEGOLOG_SPOOL_MIN_FREE_MB", default_value_t = 64)]
    pub spool_min_free_mb: u64,

    /// Keep the last this many days of every table, applied hourly (as `zegolog retain`).
    /// Without it, zegolog keeps everything.
    #[arg(long, env = "ZEGOLOG_RETAIN_DAYS")]
    pub retain_days: Option<u32>,

    /// Keep the raw callback bodies only this many days, when shorter than --retain-days
    /// (which it needs).
    #[arg(long, env = "ZEGOLOG_RETAIN_RAW_DAYS", requires = "retain_days")]
    pub retain_raw_days: Option<u32>,

    /// Turns on the dashboard at /dashboard, readable with this token (at least 16 characters,
    /// e.g. `openssl rand -hex 32`). Off without it. Prefer the environment variable: flags show
    /// in the process list.
    #[arg(long, env = "ZEGOLOG_DASHBOARD_TOKEN", hide_env_values = true, value_parser = zegolog::dashboard::DashboardToken::parse)]
    pub dashboard_token: Option<zegolog::dashboard::DashboardToken>,

    /// What to do with a callback whose (timestamp, nonce, signature) came first with another
    /// body (a forged body on a captured signature, or two callbacks sharing a nonce by chance):
    /// `quarantine` keeps it in callback_events with the reason and answers 2xx (at most 10
    /// bodies per signature; later ones are only counted); `reject` answers 401
    /// replayed_signature and stores nothing (found while draining the spool: quarantined, the
    /// sender was answered already); `accept` stores it as usual and only counts it.
    #[arg(long, env = "ZEGOLOG_ON_SIGNATURE_REUSE", default_value = "quarantine",
          value_parser = clap::builder::PossibleValuesParser::new(ReusePolicy::NAMES)
              .map(|s| s.parse::<ReusePolicy>().expect("one of the possible values")))]
    pub on_signature_reuse: ReusePolicy,

    /// How often the rollups behind the daily views are compacted, in seconds.
    #[arg(long, env = "ZEGOLOG_COMPACT_EVERY_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub compact_every_secs: u64,

    /// Most appids labelled on their own in `/metrics`' `zegolog_logouts_total` (the first seen
    /// since start); the logouts of any other app are counted under `appid="other"`. Bounds
    /// the series Prometheus stores: six per appid and instance.
    #[arg(long, env = "ZEGOLOG_METRICS_MAX_APPIDS", default_value_t = zegolog::metrics::DEFAULT_MAX_APPIDS, value_parser = parse_max_appids)]
    pub metrics_max_appids: usize,

    /// POST a JSON message to this URL when a disconnect spike starts and when it ends (the
    /// incident view's rule, looked at every minute; a Slack or Microsoft Teams incoming
    /// webhook URL works as it is). Off without it. Its path is a secret: prefer the
    /// environment variable; zegolog only ever logs its scheme and host.
    #[arg(long, env = "ZEGOLOG_ALERT_WEBHOOK_URL", hide_env_values = true)]
    pub alert_webhook_url: Option<String>,

    /// The address users open zegolog at, e.g. https://zegolog.example.com: the alert
    /// messages link to the incident view there.
    #[arg(long, env = "ZEGOLOG_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// How often the alert webhook looks for spikes, in seconds.
    #[arg(long, env = "ZEGOLOG_ALERT_EVERY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub alert_every_secs: u64,
}

fn parse_max_appids(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n <= 10_000 => Ok(n),
        _ => Err(format!(
            "must be a whole number from 0 to 10000, not {text:?}"
        )),
    }
}

impl ServeArgs {
    fn verifier(&self) -> anyhow::Result<Verifier> {
        let secrets = Secrets::new(self.secret.clone(), self.secrets.as_deref())?;
        match (secrets.is_empty(), self.insecure_skip_verify) {
            (false, false) => Ok(Verifier::new(secrets, self.max_skew_secs)),
            (true, true) => Ok(Verifier::insecure()),
            (false, true) => bail!(
                "--insecure-skip-verify was given together with a secret: choose one \
                 (remove --insecure-skip-verify to verify signatures)"
            ),
            (true, false) => bail!(
                "no callback secret: set ZEGOLOG_SECRET (or ZEGOLOG_SECRETS=appid=secret,...) to \
                 the callback secret from the ZEGOCLOUD console, or pass --insecure-skip-verify \
                 to accept unsigned callbacks for a local trial"
            ),
        }
    }

    /// The alert webhook's configuration, if its URL is set. The errors never repeat the URL.
    fn alerts(&self) -> anyhow::Result<Option<NotifierConfig>> {
        let public_url = self
            .public_url
            .as_deref()
            .map(zegolog::notifier::parse_public_url)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--public-url {e}"))?;
        let Some(url) = &self.alert_webhook_url else {
            return Ok(None);
        };
        let webhook = WebhookUrl::parse(url)
            .map_err(|e| anyhow::anyhow!("--alert-webhook-url (ZEGOLOG_ALERT_WEBHOOK_URL) {e}"))?;
        Ok(Some(NotifierConfig {
            every: Duration::from_secs(self.alert_every_secs),
            ..NotifierConfig::new(webhook, public_url)
        }))
    }

    /// The server's configuration, validated: a missing secret or a bad database URL fails here.
    fn config(&self) -> anyhow::Result<ServerConfig> {
        Ok(ServerConfig {
            verifier: self.verifier()?,
            database: self.database.location()?,
            time_zone: self.zone.time_zone.clone(),
            pool: PoolConfig {
                max_connections: self.max_connections,
                ..PoolConfig::default()
            },
            reuse_policy: self.on_signature_reuse,
            batching: BatchConfig {
                batch_size: self.batch_size as usize,
                max_wait: Duration::from_millis(self.batch_max_wait_ms),
                writers: self.writers as usize,
            },
            spool: match self.spool_max_mb {
                0 => None,
                mb => Some(SpoolConfig {
                    path: self.database.data_dir.join("spool.redb"),
                    limits: SpoolLimits {
                        max_bytes: mb.saturating_mul(1024 * 1024),
                        min_free_bytes: self.spool_min_free_mb.saturating_mul(1024 * 1024),
                    },
                }),
            },
            clients: self.clients.limits(self.max_connections),
            upkeep: UpkeepConfig {
                compact_every: Duration::from_secs(self.compact_every_secs),
                retention: self.retain_days.map(|days| Retention {
                    days,
                    raw_days: self.retain_raw_days,
                }),
            },
            dashboard: self.dashboard_token.clone(),
            metrics_max_appids: self.metrics_max_appids,
            alerts: self.alerts()?,
        })
    }
}

/// `zegolog serve`: the configuration checked, the port bound, then [`zegolog::server::run`]
/// until SIGTERM or ctrl-c.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    Ok(zegolog::server::run(config, listener, shutdown_signal()).await?)
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
}

/// Timeouts and a bound for HTTP clients. ZEGOCLOUD's sender is a server that keeps a few
/// connections open and sends each callback (under 2 KiB) whole, in well under a second: these
/// defaults never touch it, and cut clients that hold connections without sending (slowloris).
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Close a connection whose request headers have not all arrived this many seconds after it
    /// was accepted (or after the first byte of its next request). 10 s is generous for a
    /// header that fits in one packet, and short enough that connections which never finish
    /// theirs cannot pile up.
    #[arg(long, env = "ZEGOLOG_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,

    /// Answer 408 `request_timeout` and close the connection when a request's body has not all
    /// arrived this many seconds after its headers. 10 s: a callback's body comes with its
    /// headers, and the sender retries a failed callback 2, 4, 8, 16 and 32 s later.
    #[arg(long, env = "ZEGOLOG_REQUEST_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,

    /// Close a kept-alive connection after this many seconds without a request. 60 s keeps the
    /// sender's connections warm between callbacks (no new TCP and TLS handshake for each) and
    /// still frees an idle slot within a minute.
    #[arg(long, env = "ZEGOLOG_IDLE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,

    /// Most client connections open at once. Beyond it a new connection is not refused: it
    /// waits in the kernel's listen backlog, in arrival order, until an open one closes (the
    /// timeouts above guarantee that they do). 4096 is far above what the sender and a proxy
    /// need, costs about 110 MiB at most (27 KiB each), and fits the open-files limit, which zegolog
    /// raises to the hard limit at start (it warns if the bound does not fit).
    #[arg(long, env = "ZEGOLOG_MAX_CLIENT_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_client_connections: u32,
}

impl ClientArgs {
    /// The limits to serve with, reserving descriptors for `database_connections` PostgreSQL
    /// connections and a margin for the spool, logs and the private PostgreSQL's pipes.
    pub fn limits(&self, database_connections: u32) -> zegolog::http::ClientLimits {
        zegolog::http::ClientLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_client_connections as usize,
            reserved_fds: u64::from(database_connections) + 64,
        }
    }
}
