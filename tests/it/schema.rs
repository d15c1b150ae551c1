//! `schema/current.sql` is the schema the migrations build, as pg_dump writes it, so that a
//! reader finds the current tables, views and functions in one file rather than by adding up
//! migrations. This test migrates a fresh database, dumps it and compares the dump with the file.
//!
//! After a migration that changes the schema, regenerate the file and commit it with the
//! migration (as expect-test's `UPDATE_EXPECT=1` rewrites its expectations):
//!
//!     ZEGOLOG_WRITE_SCHEMA=1 cargo test --test it schema::

use crate::common;

use std::path::Path;

const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/current.sql");

/// Set to `1` to rewrite [`SCHEMA_FILE`] from the dump instead of comparing.
const WRITE_VAR: &str = "ZEGOLOG_WRITE_SCHEMA";

/// The dated partitions, which the migrations create around the day they run (and `serve`
/// hourly): their names and bounds change from one run to the next, their columns and indexes
/// are their parent's. The parents and the default partitions stay in the dump.
const DATED_PARTITIONS: [&str; 2] = [
    "public.room_logouts_[0-9]*",
    "public.signature_ledger_[0-9]*",
];

/// sqlx's own table of applied migrations, the same in every database it migrates.
const MIGRATION_TABLE: &str = "public._sqlx_migrations";

#[tokio::test]
async fn committed_schema_is_what_the_migrations_build() {
    let (url, _pool) = common::migrated_database_url().await;

    let dump = tokio::task::spawn_blocking(move || dump_schema(&url))
        .await
        .unwrap();
    let expected = format!("{}{}", header(&dump.major_version), dump.text);

    if std::env::var(WRITE_VAR).is_ok_and(|v| v == "1") {
        let path = Path::new(SCHEMA_FILE);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &expected).unwrap();
        eprintln!("wrote {SCHEMA_FILE}");
        return;
    }
    let committed = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_else(|e| {
        panic!("reading {SCHEMA_FILE}: {e}; write it with `{WRITE_VAR}=1 cargo test --test it schema::`")
    });
    assert!(
        committed == expected,
        "schema/current.sql is not the schema the migrations build.\n{}\n\
         If a migration changed the schema on purpose, regenerate the file with \
         `{WRITE_VAR}=1 cargo test --test it schema::` and commit it with the migration.",
        diff_excerpt(&committed, &expected)
    );
}

/// The comment at the top of the file: what it is, what is left out and how to regenerate it.
fn header(major_version: &str) -> String {
    let excludes: Vec<String> = DATED_PARTITIONS
        .iter()
        .chain(&[MIGRATION_TABLE])
        .map(|pattern| format!("--exclude-table='{pattern}'"))
        .collect();
    format!(
        "\
-- The schema, functions and views of a database after every migration in migrations/, on plain
-- PostgreSQL (schema/citus.sql says what differs on Citus), as
--     pg_dump --schema-only --no-owner --no-privileges \\
--         {}
-- writes it (pg_dump of PostgreSQL {major_version}), without the comment block pg_dump puts
-- before each object. Read the current schema here; migrations/ says why it is so.
--
-- Generated. Regenerate it after changing a migration, and commit it with the migration:
--     ZEGOLOG_WRITE_SCHEMA=1 cargo test --test it schema::
-- (tests/it/schema.rs fails when this file is not what the migrations build.)
--
-- Left out, because they change from one run to the next: the dated partitions
-- (room_logouts_YYYY_MM, signature_ledger_YYYY_MM_DD; the migrations create them around the
-- day they run, with their parent's columns and indexes), sqlx's table of applied migrations,
-- pg_dump's version lines and its \\restrict / \\unrestrict lines (a random key per run).

",
        excludes.join(" \\\n--         ")
    )
}

struct Dump {
    text: String,
    /// PostgreSQL's major version of the pg_dump that wrote it, e.g. `15`.
    major_version: String,
}

/// Runs pg_dump on the database at `url` and strips what changes between runs.
fn dump_schema(url: &str) -> Dump {
    let pg_dump = common::pg_dump();
    let mut url = reqwest::Url::parse(url).expect("the test database URL is a URL");
    let password = url.password().unwrap_or_default().to_owned();
    url.set_password(None).unwrap();

    let version = std::process::Command::new(&pg_dump)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", pg_dump.display()));
    // "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    let version = String::from_utf8(version.stdout).unwrap();
    let major_version = version
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .unwrap_or_else(|| panic!("unexpected `pg_dump --version`: {version}"))
        .to_owned();

    let mut command = std::process::Command::new(&pg_dump);
    command
        .args(["--schema-only", "--no-owner", "--no-privileges"])
        .args(DATED_PARTITIONS.map(|pattern| format!("--exclude-table={pattern}")))
        .arg(format!("--exclude-table={MIGRATION_TABLE}"))
        .arg(format!("--dbname={url}"))
        // The password by environment, out of the process list.
        .env("PGPASSWORD", password)
        .env("LC_ALL", "C");
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", pg_dump.display()));
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}",
        pg_dump.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Dump {
        text: compact(&String::from_utf8(output.stdout).unwrap()),
        major_version,
    }
}

/// The dump as the file keeps it: without pg_dump's comment block before each object (`--`,
/// `-- Name: ...; Type: ...`, `--`), which says again what the statement under it says; one
/// blank line between statements, none before a statement that belongs to the one above (a
/// comment, an index); then [`strip_varying_lines`].
fn compact(dump: &str) -> String {
    const ATTACHED: [&str; 4] = [
        "COMMENT ON ",
        "CREATE INDEX ",
        "CREATE UNIQUE INDEX ",
        "ALTER INDEX ",
    ];
    let lines: Vec<&str> = dump.split_inclusive('\n').collect();
    let mut all = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let is_object_header = lines[i] == "--\n"
            && lines.get(i + 1).is_some_and(|l| l.starts_with("-- Name: "))
            && lines.get(i + 2) == Some(&"--\n");
        if is_object_header {
            i += 3;
        } else {
            all.push(lines[i]);
            i += 1;
        }
    }
    let mut kept = String::with_capacity(dump.len());
    for (i, line) in all.iter().enumerate() {
        if line.trim().is_empty() {
            let next = all[i + 1..].iter().find(|l| !l.trim().is_empty());
            let attached = next.is_some_and(|l| ATTACHED.iter().any(|p| l.starts_with(p)));
            if kept.is_empty() || kept.ends_with("\n\n") || (attached && kept.ends_with(";\n")) {
                continue;
            }
        }
        kept.push_str(line);
    }
    strip_varying_lines(&kept)
}

/// The dump without the lines that change from run to run: `\restrict KEY` and `\unrestrict
/// KEY` (a random key, pg_dump since 17.6, 16.10, 15.14) and `-- Dumped from database version`
/// / `-- Dumped by pg_dump version` (minor versions), each with the blank line after it.
fn strip_varying_lines(dump: &str) -> String {
    let varies = |line: &str| {
        line.starts_with("\\restrict ")
            || line.starts_with("\\unrestrict ")
            || line.starts_with("-- Dumped from database version ")
            || line.starts_with("-- Dumped by pg_dump version ")
    };
    let mut kept = String::with_capacity(dump.len());
    let mut skip_blank = false;
    for line in dump.split_inclusive('\n') {
        if varies(line) {
            skip_blank = true;
            continue;
        }
        if skip_blank && line.trim().is_empty() {
            skip_blank = false;
            continue;
        }
        skip_blank = false;
        kept.push_str(line);
    }
    kept
}

/// Where two texts differ: a few lines of context, then the committed lines (`-`) and the
/// dump's (`+`) between their common beginning and their common end, at most 30 of each.
fn diff_excerpt(committed: &str, dumped: &str) -> String {
    const CONTEXT: usize = 3;
    const MOST: usize = 30;
    let old: Vec<&str> = committed.lines().collect();
    let new: Vec<&str> = dumped.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let old_changed = &old[prefix..old.len() - suffix];
    let new_changed = &new[prefix..new.len() - suffix];

    let mut out = format!(
        "First difference at line {} (- schema/current.sql, + the dump; {} lines against {}):\n",
        prefix + 1,
        old_changed.len(),
        new_changed.len()
    );
    for line in &old[prefix.saturating_sub(CONTEXT)..prefix] {
        out.push_str(&format!("  {line}\n"));
    }
    for (sign, lines) in [('-', old_changed), ('+', new_changed)] {
        for line in lines.iter().take(MOST) {
            out.push_str(&format!("{sign} {line}\n"));
        }
        if lines.len() > MOST {
            out.push_str(&format!("{sign} ... {} more lines\n", lines.len() - MOST));
        }
    }
    let after = old.len() - suffix;
    for line in &old[after..(after + CONTEXT).min(old.len())] {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

/// A database that the migrations before the 0.1 baseline built (versions 1 to 24 in sqlx's
/// table) is refused by `migrate` and by `serve`, with the way across; and that way, as the
/// README gives it (the archived bodies exported as JSON lines, `zegolog import`ed into a new
/// database), brings every callback over.
#[tokio::test]
async fn a_database_from_before_the_baseline_is_refused_with_the_way_across() {
    let old_url = common::empty_database_url().await;
    let old = common::lazy_pool(&old_url);
    // What sqlx and the old migrations left, as far as the refusal and the export read it.
    sqlx::raw_sql(
        "CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
             installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
             checksum bytea NOT NULL, execution_time bigint NOT NULL);
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         SELECT v, 'old', true, '\\x00', 1 FROM generate_series(1, 24) AS v WHERE v <> 19;
         CREATE TABLE callback_events (id bigint GENERATED ALWAYS AS IDENTITY, digest bytea NOT NULL,
             event text NOT NULL, appid bigint NOT NULL, body text NOT NULL, content_type text NOT NULL,
             received_at timestamptz NOT NULL DEFAULT now(), refused_reason text);",
    )
    .execute(&old)
    .await
    .unwrap();
    let now_ms = common::now_ms_clear_of_midnight();
    for (i, session) in ["101", "102", "103"].into_iter().enumerate() {
        let mut body = common::vendor_sample();
        body["session_id"] = serde_json::json!(session);
        body["login_time"] = serde_json::json!((now_ms - 60_000 * (i as i64 + 1)).to_string());
        body["logout_time"] = serde_json::json!(now_ms.to_string());
        let body = common::signed(body);
        sqlx::query(
            "INSERT INTO callback_events (digest, event, appid, body, content_type)
             VALUES (sha256(convert_to($1, 'UTF8')), 'room_logout', 1, $1, 'application/json')",
        )
        .bind(body.to_string())
        .execute(&old)
        .await
        .unwrap();
    }

    let migrate = common::zegolog()
        .args(["migrate", "--database-url", &old_url])
        .output()
        .unwrap();
    assert!(!migrate.status.success());
    let stderr = String::from_utf8_lossy(&migrate.stderr);
    assert!(
        stderr.contains("from before the 0.1 baseline")
            && stderr.contains("versions 1, 2,")
            && stderr.contains("Upgrading a database from before 0.1"),
        "{stderr}"
    );
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname IN ('room_logouts', 'pending_contributions')",
    )
    .fetch_one(&old)
    .await
    .unwrap();
    assert_eq!(tables, 0, "nothing of the baseline was applied");

    // serve stops at once, saying the same: no retry can fix it.
    let data_dir = common::temp_data_dir("pre-baseline");
    let serve = common::zegolog()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .env("DATABASE_URL", &old_url)
        .env("ZEGOLOG_SECRET", "x".repeat(32))
        .env("ZEGOLOG_DATA_DIR", &data_dir)
        .output()
        .unwrap();
    assert!(!serve.status.success());
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert!(stderr.contains("from before the 0.1 baseline"), "{stderr}");
    std::fs::remove_dir_all(&data_dir).ok();

    // The README's way across: the export query, then `zegolog import` into a new database.
    let export: Vec<String> = sqlx::query_scalar(README_EXPORT_QUERY)
        .fetch_all(&old)
        .await
        .unwrap();
    let file = common::temp_data_dir("export").join("callbacks.jsonl");
    std::fs::write(&file, export.join("\n") + "\n").unwrap();
    let (new_url, new) = common::migrated_database_url().await;
    let import = common::zegolog()
        .args(["import", "--database-url", &new_url])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let logouts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM room_logouts WHERE body IS NOT NULL")
            .fetch_one(&new)
            .await
            .unwrap();
    assert_eq!(logouts, 3);
}

/// The export of the README's "Upgrading a database from before 0.1", as it is there.
const README_EXPORT_QUERY: &str =
    "SELECT body FROM callback_events WHERE refused_reason IS NULL ORDER BY received_at, id";

#[test]
fn the_readme_gives_the_export_query_this_test_runs() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains(README_EXPORT_QUERY));
}
