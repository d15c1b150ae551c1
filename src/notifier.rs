//! The alert webhook (`--alert-webhook-url`): for teams without Prometheus, `serve` looks for
//! disconnect spikes every minute and POSTs one JSON message when a spike starts and one when
//! it ends.
//!
//! - **The rule is the incident view's**: for every app, the last [`NotifierConfig::window`] in
//!   1-minute buckets from `incident_reasons` ([`incident::reason_buckets`]), and
//!   [`incident::spikes`] / [`incident::is_spike`] decide, as they do for `/dashboard/incident`.
//!   A spike of an app and reason starts when a bucket of the window is a spike, and ends when
//!   none is any more (so after `window` quiet minutes).
//! - **One message per spike, whatever the number of instances**: a tick runs only in the
//!   instance that holds the session advisory lock `hashtext('zegolog_alert_spikes')` (the others
//!   skip that minute), and the spikes and their messages are rows of `alert_spikes`
//!   (`migrations/0101_raw_tables.sql`), whose partial unique index allows one open spike per
//!   app and reason.
//! - **Retries**: a delivery is tried [`NotifierConfig::attempts`] times with doubling pauses;
//!   a message still undelivered stays in its row and is tried again the next minute (by any
//!   instance), until it is an hour old: then it is given up, with an error in the log.
//! - **The body** works as a Slack or Microsoft Teams incoming webhook (`text`) and carries the
//!   figures as fields: see [`start_message`] and [`end_message`], and docs/operations.md.
//! - **The URL's secret part is never shown**: [`WebhookUrl`] displays and logs as
//!   `scheme://host[:port]/…`, errors are logged without their URL, and redirects are not
//!   followed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

use crate::error_chain;
use crate::store::Store;
use crate::views::incident::{self, Bucket, Offender, ReasonBucket, Window};
use crate::views::By;

/// The advisory lock (on `hashtext` of this) the instance evaluating spikes holds.
pub const LOCK_KEY: &str = "zegolog_alert_spikes";

/// Rooms listed in a start message.
pub const TOP_ROOMS: u32 = 5;

/// An undelivered message older than this is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);

/// Spikes that ended longer ago than this are deleted from `alert_spikes`.
pub const KEEP_DAYS: i32 = 30;

/// A webhook URL. Its path and query are the secret of a Slack or Teams webhook: it displays
/// (and so logs) as `scheme://host[:port]/…` only.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(reqwest::Url);

impl WebhookUrl {
    /// An `http://` or `https://` URL with a host. The error never repeats the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(text.trim())
            .map_err(|e| format!("not a URL ({e}); it must look like https://host/path"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "must be an http:// or https:// URL, not {}:",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("has no host".into());
        }
        Ok(Self(url))
    }

    /// `scheme://host[:port]/…`: what may be shown of it.
    pub fn redacted(&self) -> String {
        let mut shown = format!(
            "{}://{}",
            self.0.scheme(),
            self.0.host_str().unwrap_or_default()
        );
        if let Some(port) = self.0.port() {
            shown.push_str(&format!(":{port}"));
        }
        if self.0.path() != "/" || self.0.query().is_some() {
            shown.push_str("/…");
        }
        shown
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookUrl({})", self.redacted())
    }
}

/// The base address users open zegolog at (`--public-url`), without a trailing slash.
pub fn parse_public_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| format!("not a URL ({e}); it must look like https://zegolog.example.com"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// What the notifier does, and how often.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    pub webhook: WebhookUrl,
    /// Where users open zegolog (`--public-url`): the messages link to its incident view.
    pub public_url: Option<String>,
    /// How often spikes are looked for.
    pub every: Duration,
    /// How far back each look goes, in whole minutes: a spike ends after this long without a
    /// spiking minute.
    pub window: Duration,
    /// Deliveries tried in one tick ...
    pub attempts: u32,
    /// ... with this pause after the first failure, doubling after each.
    pub retry_pause: Duration,
}

impl NotifierConfig {
    /// Every minute, over the last 5 minutes, 4 attempts 1, 2 and 4 s apart.
    pub fn new(webhook: WebhookUrl, public_url: Option<String>) -> Self {
        Self {
            webhook,
            public_url,
            every: Duration::from_secs(60),
            window: Duration::from_secs(5 * 60),
            attempts: 4,
            retry_pause: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("reading or writing the spikes")]
    Database(#[from] sqlx::Error),
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tick {
    /// False when another instance held the lock: this one did nothing.
    pub evaluated: bool,
    /// (appid, reason) of the spikes that started, and that ended, in this tick.
    pub started: Vec<(i64, String)>,
    pub ended: Vec<(i64, String)>,
    /// Messages delivered, and messages left for a later tick (or given up).
    pub delivered: usize,
    pub undelivered: usize,
}

/// Looks for spikes and posts their messages; see the module docs.
#[derive(Debug, Clone)]
pub struct Notifier {
    store: Store,
    config: NotifierConfig,
    client: reqwest::Client,
}

/// A spike that had started (a row of `alert_spikes` without `ended_at`).
#[derive(Debug, sqlx::FromRow)]
struct OpenSpike {
    id: i64,
    appid: i64,
    reason: String,
    started_at: DateTime<Utc>,
    peak_share: f64,
    peak_lift: Option<f64>,
}

/// A row with a message to deliver.
#[derive(Debug, sqlx::FromRow)]
struct Pending {
    id: i64,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    start_message: Value,
    end_message: Option<Value>,
    start_sent: bool,
}

impl Notifier {
    pub fn new(store: Store, config: NotifierConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("zegolog/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("building the webhook's HTTP client");
        Self {
            store,
            config,
            client,
        }
    }

    /// Ticks every [`NotifierConfig::every`] until dropped; a failed tick is logged and the next
    /// one tries again.
    pub async fn run(self) {
        tracing::info!(webhook = %self.config.webhook, every_secs = self.config.every.as_secs(), "alert webhook on: disconnect spikes are posted to it");
        let mut interval = tokio::time::interval(self.config.every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(error) = self.tick(Utc::now()).await {
                tracing::warn!(error = %error_chain(&error), "alert webhook: looking for spikes failed; trying again at the next tick");
            }
        }
    }

    /// One look at `now`: in the instance that gets the lock, updates the spikes and delivers
    /// what is pending; in the others, nothing.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Tick, NotifierError> {
        // A connection of its own, closed at the end: the session lock can never stay behind
        // in the pool.
        let mut conn = self.store.pool().acquire().await?.detach();
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if !locked {
            let _ = conn.close().await;
            return Ok(Tick::default());
        }
        let mut tick = Tick {
            evaluated: true,
            ..Tick::default()
        };
        let result = async {
            self.update_spikes(&mut conn, now, &mut tick).await?;
            self.deliver_pending(&mut conn, now, &mut tick).await?;
            sqlx::query(
                "DELETE FROM alert_spikes WHERE ended_at < $1 - make_interval(days => $2)
                   AND end_sent_at IS NOT NULL",
            )
            .bind(now)
            .bind(KEEP_DAYS)
            .execute(&mut conn)
            .await?;
            Ok(())
        }
        .await;
        // Released here, not by closing the session: the backend lets its locks go only when it
        // has exited, which the next tick's connection may not wait for (it would then find the
        // lock taken and skip its turn). Closing releases it anyway if this fails.
        let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(LOCK_KEY)
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        result.map(|()| tick)
    }

    /// Which (app, reason) spike now, against the open spikes: rows for those that start, peaks
    /// for those that go on, an end for those that stopped.
    async fn update_spikes(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
        tick: &mut Tick,
    ) -> Result<(), NotifierError> {
        let apps: Vec<i64> = sqlx::query_scalar("SELECT unnest(zegolog_appids())")
            .fetch_all(&mut *conn)
            .await?;
        let mut spiking = Vec::new();
        for appid in apps {
            let window = Window::ending(appid, self.config.window, Bucket::OneMinute, now);
            let rows = incident::reason_buckets(&mut *conn, &window).await?;
            spiking.extend(
                incident::spikes(&rows)
                    .into_iter()
                    .map(|spike| (window, spike)),
            );
        }
        let open: Vec<OpenSpike> = sqlx::query_as(
            "SELECT id, appid, reason, started_at, peak_share, peak_lift
             FROM alert_spikes WHERE ended_at IS NULL ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await?;

        for (window, spike) in &spiking {
            match open
                .iter()
                .find(|o| o.appid == window.appid && o.reason == spike.reason)
            {
                Some(going_on) => {
                    sqlx::query(
                        "UPDATE alert_spikes SET peak_share = greatest(peak_share, $2),
                                peak_lift = greatest(peak_lift, $3)
                         WHERE id = $1",
                    )
                    .bind(going_on.id)
                    .bind(spike.share)
                    .bind(spike.lift)
                    .execute(&mut *conn)
                    .await?;
                }
                None => {
                    let rooms =
                        incident::offenders(&mut *conn, window, By::Room, TOP_ROOMS).await?;
                    let message =
                        start_message(window, spike, &rooms, self.link(window.appid), now);
                    let inserted = sqlx::query(
                        "INSERT INTO alert_spikes (appid, reason, started_at, peak_share, peak_lift, start_message)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (appid, reason) WHERE ended_at IS NULL DO NOTHING",
                    )
                    .bind(window.appid)
                    .bind(&spike.reason)
                    .bind(now)
                    .bind(spike.share)
                    .bind(spike.lift)
                    .bind(&message)
                    .execute(&mut *conn)
                    .await?;
                    if inserted.rows_affected() == 1 {
                        tracing::warn!(
                            appid = window.appid,
                            reason = %spike.reason,
                            share = spike.share,
                            lift = spike.lift,
                            "disconnect spike started"
                        );
                        tick.started.push((window.appid, spike.reason.clone()));
                    }
                }
            }
        }

        for stopped in open.iter().filter(|o| {
            !spiking
                .iter()
                .any(|(w, s)| w.appid == o.appid && s.reason == o.reason)
        }) {
            let message = end_message(stopped, self.config.window, self.link(stopped.appid), now);
            sqlx::query(
                "UPDATE alert_spikes SET ended_at = $2, end_message = $3
                 WHERE id = $1 AND ended_at IS NULL",
            )
            .bind(stopped.id)
            .bind(now)
            .bind(&message)
            .execute(&mut *conn)
            .await?;
            tracing::info!(appid = stopped.appid, reason = %stopped.reason, "disconnect spike ended");
            tick.ended.push((stopped.appid, stopped.reason.clone()));
        }
        Ok(())
    }

    /// Posts every message not delivered yet, oldest spike first, a spike's start before its
    /// end.
    async fn deliver_pending(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
        tick: &mut Tick,
    ) -> Result<(), NotifierError> {
        let pending: Vec<Pending> = sqlx::query_as(
            "SELECT id, started_at, ended_at, start_message, end_message,
                    start_sent_at IS NOT NULL AS start_sent
             FROM alert_spikes
             WHERE start_sent_at IS NULL OR (ended_at IS NOT NULL AND end_sent_at IS NULL)
             ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let give_up = chrono::Duration::from_std(GIVE_UP_AFTER).expect("an hour");
        for row in pending {
            let mut messages = Vec::new();
            if !row.start_sent {
                messages.push(("start_sent_at", row.started_at, &row.start_message));
            }
            if let (Some(ended_at), Some(end)) = (row.ended_at, &row.end_message) {
                messages.push(("end_sent_at", ended_at, end));
            }
            for (column, since, message) in messages {
                match self.deliver(message).await {
                    Ok(()) => {
                        sqlx::query(&format!(
                            "UPDATE alert_spikes SET {column} = $2, attempts = 0, last_error = NULL WHERE id = $1"
                        ))
                        .bind(row.id)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                        tick.delivered += 1;
                    }
                    Err(error) => {
                        tick.undelivered += 1;
                        let given_up = now - since > give_up;
                        if given_up {
                            tracing::error!(webhook = %self.config.webhook, %error, event = %message["event"], "alert webhook: giving up a message undelivered for an hour");
                        } else {
                            tracing::warn!(webhook = %self.config.webhook, %error, "alert webhook: delivery failed; trying again at the next tick");
                        }
                        // A given-up message counts as sent, with its error kept.
                        let mark_sent = if given_up {
                            format!(", {column} = $2")
                        } else {
                            String::new()
                        };
                        sqlx::query(&format!(
                            "UPDATE alert_spikes SET attempts = attempts + 1, last_error = $3{mark_sent} WHERE id = $1"
                        ))
                        .bind(row.id)
                        .bind(now)
                        .bind(&error)
                        .execute(&mut *conn)
                        .await?;
                        // An end never overtakes its start.
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// POSTs `message`, retrying with doubling pauses; the error of the last attempt (without
    /// the URL) otherwise.
    async fn deliver(&self, message: &Value) -> Result<(), String> {
        let mut pause = self.config.retry_pause;
        let mut last = String::new();
        for attempt in 1..=self.config.attempts.max(1) {
            match self
                .client
                .post(self.config.webhook.0.clone())
                .json(message)
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last = format!("answered {}", response.status()),
                Err(error) => last = error_chain(&error.without_url()),
            }
            if attempt < self.config.attempts {
                tracing::debug!(webhook = %self.config.webhook, attempt, error = %last, "alert webhook: retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
        Err(last)
    }

    /// The incident view of `appid` at `--public-url`, if set.
    fn link(&self, appid: i64) -> Option<String> {
        self.config
            .public_url
            .as_ref()
            .map(|base| format!("{base}/dashboard/incident?appid={appid}&last=1h&bucket=1m"))
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn clock(at: DateTime<Utc>) -> String {
    at.format("%H:%M UTC").to_string()
}

fn link_text(link: &Option<String>, appid: i64) -> String {
    match link {
        Some(link) => format!("Incident view: {link}"),
        None => format!("Incident view: /dashboard/incident?appid={appid} on zegolog"),
    }
}

/// The message of a spike that starts: `text` for Slack and Teams, and the fields.
pub fn start_message(
    window: &Window,
    spike: &ReasonBucket,
    rooms: &[Offender],
    link: Option<String>,
    now: DateTime<Utc>,
) -> Value {
    let usual = spike.usual_share.map_or_else(|| "none".to_owned(), percent);
    let lift = spike
        .lift
        .map_or_else(String::new, |l| format!(", {l:.1} times its usual share"));
    let worst = if rooms.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = rooms
            .iter()
            .map(|r| format!("{} ({})", r.key, r.abnormal))
            .collect();
        format!(" Worst rooms (abnormal disconnects): {}.", list.join(", "))
    };
    let text = format!(
        "Disconnect spike in app {appid}: {reason} made {share} of logouts in the minute from {at} ({logouts} of {all}), usually {usual}{lift}.{worst} {link_text}",
        appid = window.appid,
        reason = spike.reason,
        share = percent(spike.share),
        at = clock(spike.bucket_start),
        logouts = spike.logouts,
        all = spike.bucket_logouts,
        link_text = link_text(&link, window.appid),
    );
    json!({
        "text": text,
        "event": "spike_started",
        "appid": window.appid,
        "reason": spike.reason,
        "share": spike.share,
        "usual_share": spike.usual_share,
        "lift": spike.lift,
        "logouts": spike.logouts,
        "bucket_logouts": spike.bucket_logouts,
        "bucket_start": spike.bucket_start,
        "window": {"from": window.from, "to": window.to, "bucket": window.bucket.as_str()},
        "worst_rooms": rooms.iter().map(|r| json!({
            "room_id": r.key,
            "abnormal": r.abnormal,
            "heartbeat_timeout": r.heartbeat_timeout,
            "connection_lost": r.connection_lost,
            "kicked_out": r.kicked_out,
            "token_expired": r.token_expired,
            "users": r.others,
            "last_abnormal_at": r.last_abnormal_at,
        })).collect::<Vec<_>>(),
        "link": link,
        "started_at": now,
    })
}

/// The message of a spike that ended.
fn end_message(
    spike: &OpenSpike,
    window: Duration,
    link: Option<String>,
    now: DateTime<Utc>,
) -> Value {
    let minutes = (now - spike.started_at).num_minutes();
    let peak_lift = spike
        .peak_lift
        .map_or_else(String::new, |l| format!(", {l:.1} times its usual share"));
    let text = format!(
        "Disconnect spike over in app {appid}: {reason} has not spiked for {quiet} minutes (started {started}, announced {minutes} min ago; peak {peak}{peak_lift}). {link_text}",
        appid = spike.appid,
        reason = spike.reason,
        quiet = window.as_secs() / 60,
        started = clock(spike.started_at),
        peak = percent(spike.peak_share),
        link_text = link_text(&link, spike.appid),
    );
    json!({
        "text": text,
        "event": "spike_ended",
        "appid": spike.appid,
        "reason": spike.reason,
        "started_at": spike.started_at,
        "ended_at": now,
        "peak_share": spike.peak_share,
        "peak_lift": spike.peak_lift,
        "window_minutes": window.as_secs() / 60,
        "link": link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_url_shows_only_its_scheme_and_host() {
        let url =
            WebhookUrl::parse("https://hooks.slack.com/services/T00/B00/SECRETSECRET").unwrap();
        assert_eq!(url.to_string(), "https://hooks.slack.com/…");
        assert!(!format!("{url:?}").contains("SECRET"));
        let url = WebhookUrl::parse("http://127.0.0.1:9000/?token=SECRET").unwrap();
        assert_eq!(url.to_string(), "http://127.0.0.1:9000/…");
        for bad in [
            "ftp://x/SECRET",
            "not a url SECRET",
            "mailto:SECRET@x",
            "https://",
        ] {
            let error = WebhookUrl::parse(bad).unwrap_err();
            assert!(!error.contains("SECRET"), "{error}");
        }
    }

    #[test]
    fn the_public_url_loses_its_trailing_slash() {
        assert_eq!(
            parse_public_url("https://zegolog.example.com/").unwrap(),
            "https://zegolog.example.com"
        );
        assert!(parse_public_url("zegolog.example.com").is_err());
    }
}
