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
        .map(|pattern| format!("--exclude-table='{pattern}'"))
        .collect();
    format!(
        "\
-- The schema, functions and views of a database after every migration in migrations/, as
--     pg_dump --schema-only --no-owner --no-privileges \\
--         {}
-- writes it (pg_dump of PostgreSQL {major_version}). Read the current schema here rather than
-- diffing migrations; change it with a new migration, never here.
--
-- Generated. Regenerate it after adding a migration, and commit it with the migration:
--     ZEGOLOG_WRITE_SCHEMA=1 cargo test --test it schema::
-- (tests/it/schema.rs fails when this file is not what the migrations build.)
--
-- Left out, because they change from one run to the next: the dated partitions
-- (room_logouts_YYYY_MM, signature_ledger_YYYY_MM_DD; the migrations create them around the
-- day they run, with their parent's columns and indexes), pg_dump's version lines and its
-- \\restrict / \\unrestrict lines (a random key per run).

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
        text: strip_varying_lines(&String::from_utf8(output.stdout).unwrap()),
        major_version,
    }
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
