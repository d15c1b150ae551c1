//! zegolog on a real local Citus cluster (a coordinator and two workers, which the harness
//! starts once for the binary): `migrate` distributes every table, the write path stores each
//! callback once through `zegolog serve` on the coordinator, the views equal those of one
//! PostgreSQL, upkeep works, and a stopped worker loses nothing. Without Citus installed these
//! tests fail with the way to install it.
//!
//! Run them alone with `cargo test --test it citus::`.

use std::path::{Path, PathBuf};

use crate::common;

use common::citus::citus_database;
use common::migrated_pool;
use serde_json::{json, Value};

mod bench;
mod commands;
mod erase;
mod fault;
mod ingest;
mod tools;
mod upkeep;
mod views;

/// The tables that stay plain PostgreSQL tables on the coordinator (schema/citus.sql says why).
const ON_THE_COORDINATOR: [&str; 5] = [
    "_sqlx_migrations",
    "alert_spikes",
    "logout_rollup",
    "logout_duration_day",
    "logout_reason_day",
];

/// Every distributed table but partitions: name, method, distribution column, colocation group
/// and replication model.
async fn distribution(pool: &sqlx::PgPool) -> Vec<(String, String, Option<String>, i64, String)> {
    sqlx::query_as(
        "SELECT logicalrelid::text, partmethod::text,
                column_to_column_name(logicalrelid, partkey), colocationid::bigint,
                repmodel::text
         FROM pg_dist_partition AS p JOIN pg_class AS c ON c.oid = p.logicalrelid
         WHERE NOT c.relispartition ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_distributes_every_table_and_a_second_run_changes_nothing() {
    let (_url, pool) = citus_database().await;

    let layout = distribution(&pool).await;
    let of = |table: &str| {
        layout
            .iter()
            .find(|(name, ..)| name == table)
            .unwrap_or_else(|| panic!("{table} is not in Citus's metadata: {layout:?}"))
            .clone()
    };
    let logouts = of("room_logouts");
    assert_eq!(
        (logouts.1.as_str(), logouts.2.as_deref()),
        ("h", Some("room_id"))
    );
    for table in [
        "room_logins",
        "room_lifecycle_events",
        "room_concurrency_minute",
        "room_concurrency_day",
        "zegolog_room_days",
    ] {
        let (_, method, column, colocation, _) = of(table);
        assert_eq!(
            (method.as_str(), column.as_deref(), colocation),
            ("h", Some("room_id"), logouts.3),
            "{table} is distributed by room_id with room_logouts"
        );
    }
    assert_eq!(of("callback_events").2.as_deref(), Some("digest"));
    assert_eq!(of("signature_ledger").2.as_deref(), Some("signature"));
    // Not distributed (partmethod n): a reference table is replicated to every node (repmodel
    // t), a Citus local table stays on the coordinator (repmodel s).
    let settings = of("zegolog_settings");
    assert_eq!(
        (settings.1.as_str(), settings.4.as_str()),
        ("n", "t"),
        "zegolog_settings is a reference table"
    );
    for table in [
        "pending_contributions",
        "app_concurrency_minute",
        "app_concurrency_day",
    ] {
        let (_, method, _, _, replication) = of(table);
        assert_eq!(
            (method.as_str(), replication.as_str()),
            ("n", "s"),
            "{table} is a Citus local table"
        );
    }
    // Every table is in the layout: a new table of a later migration must be added to it.
    let unplaced: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class AS c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
           AND NOT c.relispartition
           AND NOT EXISTS (SELECT 1 FROM pg_dist_partition AS p WHERE p.logicalrelid = c.oid)
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut expected = ON_THE_COORDINATOR.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(unplaced, expected);
    // The shards are spread over both workers.
    let nodes: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'room_logouts'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(nodes, 2);

    // schema/citus.sql again, as every start applies it: the layout is what it was.
    zegolog::store::Store::from_pool(pool.clone())
        .migrate()
        .await
        .unwrap();
    assert_eq!(distribution(&pool).await, layout);
}

/// Leaves per-room concurrency deltas for appid 1 pending, as the write path does (`n`
/// minutes from `from` on, `step` minutes apart, over seven rooms), and compacts them.
async fn compact_deltas(db: &sqlx::PgPool, from: &str, n: i32, step: i32) {
    sqlx::query(&format!(
        "INSERT INTO pending_contributions (deltas)
         SELECT array_agg(ROW(1, 'room-' || (g % 7), timestamptz '{from}' + g * interval '{step} minutes',
                              CASE WHEN g % 3 = 0 THEN -1 ELSE 1 END)::zegolog_concurrency_delta)
         FROM generate_series(1, {n}) AS g"
    ))
    .execute(db)
    .await
    .unwrap();
    sqlx::query("SELECT zegolog_compact_rollups()")
        .execute(db)
        .await
        .unwrap();
}

/// The rows of the per-room rollups, and of the functions over them, for the deltas above.
const ROOM_ROLLUPS: [&str; 4] = [
    "SELECT * FROM room_concurrency_minute",
    "SELECT * FROM room_concurrency_day",
    "SELECT * FROM room_peak_concurrency_daily_in('Asia/Shanghai', date '2026-01-08', date '2026-01-20', 1)",
    "SELECT * FROM room_users_online(1, 'room-3', timestamptz '2026-01-10 12:00+00', timestamptz '2026-01-13 00:00+00')",
];

async fn room_rollups(pool: &sqlx::PgPool) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for query in ROOM_ROLLUPS {
        all.push(views::rows(pool, query).await.unwrap());
    }
    all
}

/// Fails, naming the query and its first differing rows, unless `a` equals `b`.
fn assert_same_rollups(a: &[Vec<String>], b: &[Vec<String>], what: &str) {
    for ((query, a), b) in ROOM_ROLLUPS.iter().zip(a).zip(b) {
        let differ: Vec<_> = a.iter().zip(b).filter(|(x, y)| x != y).take(2).collect();
        assert!(
            a == b,
            "{what}: {query}: {} rows against {}, first differences {differ:?}",
            a.len(),
            b.len()
        );
    }
}

/// Compaction's per-room refresh (schema/citus.sql's form, on the shards) gives the rows one
/// PostgreSQL's does, over days it refreshes twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_rollups_on_the_cluster_equal_one_postgresql() {
    let (_url, pool) = citus_database().await;
    let plain = migrated_pool().await;
    for from in ["2026-01-10 00:00+00", "2026-01-11 05:00+00"] {
        for db in [&pool, &plain] {
            compact_deltas(db, from, 350, 12).await;
        }
        assert_same_rollups(
            &room_rollups(&pool).await,
            &room_rollups(&plain).await,
            "cluster and one PostgreSQL",
        );
    }
    assert!(room_rollups(&pool).await[1].len() > 20);
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM zegolog_room_days")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(staged, 0);
}

/// schema/citus.sql is for Citus only: on plain PostgreSQL `migrate` applies none of it.
#[tokio::test]
async fn plain_postgres_gets_nothing_of_the_citus_file() {
    let pool = migrated_pool().await;
    let found: (bool, bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus'),
                to_regclass('zegolog_room_days') IS NOT NULL,
                to_regnamespace('zegolog_analyst') IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(found, (false, false, false));
}

pub use common::deliver;

/// Known traffic for appid 1 over the last three days: `rooms` rooms, each with its lifecycle,
/// logins and logouts; every third logout without `login_time` (paired with its login by the
/// write path), some reasons abnormal. The same list always, in an order where some logouts
/// come before their login.
pub fn traffic(rooms: usize, sessions_per_room: usize) -> Vec<Value> {
    const MINUTE_MS: i64 = 60_000;
    // Midnight UTC three days ago, so that the traffic spans whole days before now.
    let now = chrono::Utc::now().timestamp_millis();
    let t0 = now - now % common::DAY_MS - 3 * common::DAY_MS;
    let mut callbacks = Vec::new();
    for r in 0..rooms {
        let room = format!("room-{r}");
        let opened = t0 + (r as i64 % 3) * common::DAY_MS + r as i64 * 7 * MINUTE_MS;
        callbacks.push(
            json!({"event": "room_create", "appid": "1", "room_id": room,
            "room_session_id": (9000 + r).to_string(), "room_create_time": opened.to_string(),
            "id_name": format!("creator-{r}")}),
        );
        for s in 0..sessions_per_room {
            let session = (r * 1000 + s) as u64;
            let user = format!("user-{}", (r + s) % 11);
            let role = ["1", "2"][s % 2];
            let term = ["1", "2", "4", "32"][s % 4];
            let login_ms = opened + (s as i64) * 3 * MINUTE_MS + 1_000;
            let logout_ms = login_ms + ((s * s * 37 + r * 11) as i64 % 240 + 1) * MINUTE_MS / 2;
            let login = json!({"event": "room_login", "appid": "1", "room_id": room,
                "room_name": format!("name of {room}"), "room_seq": (r + 1).to_string(),
                "user_account": user, "user_nickname": format!("nick {user}"),
                "session_id": session.to_string(), "login_time": login_ms.to_string(),
                "user_role": role, "auth_level": "1", "relogin": "0",
                "user_update_seq": "1", "term_type": term});
            let mut logout = json!({"event": "room_logout", "appid": "1", "room_id": room,
                "room_seq": (r + 1).to_string(), "user_account": user,
                "user_nickname": format!("nick {user}"), "session_id": session.to_string(),
                "login_time": login_ms.to_string(), "logout_time": logout_ms.to_string(),
                "reason": ((s + r) % 6).to_string(), "user_role": role,
                "user_update_seq": "2"});
            if s % 3 == 0 {
                logout.as_object_mut().unwrap().remove("login_time");
                callbacks.push(logout);
                callbacks.push(login);
            } else {
                callbacks.push(login);
                callbacks.push(logout);
            }
        }
        let closed = opened + (sessions_per_room as i64 + 90) * 3 * MINUTE_MS;
        callbacks.push(json!({"event": "room_close", "appid": "1", "room_id": room,
            "room_session_id": (9000 + r).to_string(), "room_close_time": closed.to_string(),
            "close_reason": (r % 3).to_string()}));
    }
    callbacks
}

/// How many callbacks of each event `callbacks` holds: (logouts, logins, lifecycle events).
pub fn counts(callbacks: &[Value]) -> (i64, i64, i64) {
    let of = |event: &str| callbacks.iter().filter(|c| c["event"] == event).count() as i64;
    (
        of("room_logout"),
        of("room_login"),
        of("room_create") + of("room_close"),
    )
}

/// `zegolog ARGS` against the database at `url`, which must succeed.
pub(super) async fn zegolog(url: &str, args: &[&str]) -> String {
    let mut command = common::zegolog();
    command.args(args).env("DATABASE_URL", url);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "zegolog {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A documented query's text, without its final `;`.
pub(super) fn read_query(file: &Path) -> String {
    let sql = std::fs::read_to_string(file).unwrap();
    sql.trim().trim_end_matches(';').to_owned()
}

/// Where the Citus form of a `sql/` file is, when Citus cannot run it as written.
pub(super) fn citus_form(file: &Path) -> PathBuf {
    file.parent()
        .unwrap()
        .join("citus")
        .join(file.file_name().unwrap())
}
