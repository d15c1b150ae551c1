//! PostgreSQL's ceilings, measured with pgbench on the benchmark's database: what PostgreSQL
//! alone does, without zegolog's HTTP, parsing, signatures or round trips in the way.
//!
//! - **plain**: 100-row batches into a table with one unique key, durable commits: the floor
//!   of what any receiver pays per row on this machine.
//! - **zegolog's statement**: zegolog's own batch write (`src/store/write_batch.sql`, the very
//!   text the store runs for a batch of logouts: its logouts-only form) with 100 realistic, signed, unique logouts per batch, generated in
//!   SQL: archive rows, the signature ledger, typed rows and rollup contributions, as in
//!   production. The gap between the two is the cost of zegolog's schema; the gap between
//!   this and zegolog under load is the cost of everything else.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::embedded_pg::find_bindir;

/// Rows per pgbench transaction, as zegolog's batches under load.
pub(super) const BATCH: u32 = 100;

/// Which statement pgbench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceiling {
    /// 100-row batches into a table with one unique key.
    Plain,
    /// zegolog's own write statement with 100 generated logouts.
    WriteBatch,
}

impl Ceiling {
    pub(super) fn label(self) -> &'static str {
        match self {
            Ceiling::Plain => "plain insert, one unique key",
            Ceiling::WriteBatch => "zegolog's write statement",
        }
    }

    /// Run once before pgbench, on the freshly migrated database.
    pub(super) fn setup(self) -> &'static str {
        match self {
            Ceiling::Plain => {
                "CREATE TABLE bench_plain (session_id numeric NOT NULL, logout_time timestamptz NOT NULL, \
                 appid bigint NOT NULL, room_id text NOT NULL, user_account text NOT NULL, reason int NOT NULL, \
                 UNIQUE (session_id, logout_time))"
            }
            Ceiling::WriteBatch => "SELECT 1",
        }
    }

    pub(super) fn script(self) -> String {
        match self {
            Ceiling::Plain => format!(
                "\\set base random(1, 9000000000000)\n\
                 INSERT INTO bench_plain (session_id, logout_time, appid, room_id, user_account, reason)\n\
                 SELECT :base::numeric * 1000 + g, now(), 1, 'room-' || g % 50, 'user-' || g, g % 5\n\
                 FROM generate_series(1, {BATCH}) AS g\n\
                 ON CONFLICT DO NOTHING;\n"
            ),
            Ceiling::WriteBatch => write_batch_script(),
        }
    }
}

/// zegolog's write statement with every parameter replaced by the SQL that builds its array
/// for [`BATCH`] logouts (`g` numbers them; `:base` makes each transaction's keys new).
fn write_batch_script() -> String {
    let statement: String = crate::store::WriteStatement::LogoutsOnly
        .sql()
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let session = "(:base::bigint * 1000 + g)";
    let array = |expr: &str| {
        format!("(SELECT array_agg({expr} ORDER BY g) FROM generate_series(1, {BATCH}) AS g)")
    };
    let body = format!(
        "format('{{\"event\":\"room_logout\",\"appid\":\"1\",\"room_id\":\"room-%s\",\"room_seq\":\"%s\",\
         \"user_account\":\"user-%s\",\"user_nickname\":\"nick %s\",\"session_id\":\"%s\",\
         \"login_time\":\"%s\",\"logout_time\":\"%s\",\"reason\":\"%s\",\"user_role\":\"2\",\
         \"user_update_seq\":\"13\",\"timestamp\":\"%s\",\"nonce\":\"%s\",\"signature\":\"%s\"}}', \
         g % 50, {session}, g, g, {session}, \
         (extract(epoch FROM now()) * 1000)::bigint - 300000, (extract(epoch FROM now()) * 1000)::bigint, \
         g % 5, extract(epoch FROM now())::bigint, {session}, \
         left(encode(sha256(convert_to({session}::text, 'UTF8')), 'hex'), 40))"
    );
    let parameter = |n: u32| -> String {
        match n {
            1 => array("sha256(convert_to(:base::text || '/' || g, 'UTF8'))"),
            2 => array("'room_logout'::text"),
            3 | 7 => array("1::bigint"),
            4 => array(&body),
            5 => array("'application/json'::text"),
            6 => array("NULL::text"),
            8 => array("'room-' || g % 50"),
            9 | 12 | 38 => array(&format!("{session}::text")),
            10 => array("'user-' || g"),
            11 => array("'nick ' || g"),
            13 => array("now() - interval '5 minutes'"),
            14 | 37 => array("now()"),
            15 => array("g % 5"),
            16 => array("2"),
            17 => array("13::bigint"),
            39 => array(&format!(
                "left(encode(sha256(convert_to({session}::text, 'UTF8')), 'hex'), 40)"
            )),
            40 => "'quarantine'".to_owned(),
            41 => crate::outcome::QUARANTINE_PER_SIGNATURE.to_string(),
            42 => array("g::bigint"),
            // No logins or room events in these batches: empty arrays of their casts' types.
            _ => "'{}'".to_owned(),
        }
    };
    let mut script = String::from("\\set base random(1, 9000000000000)\n");
    let mut rest = statement.as_str();
    while let Some(at) = rest.find('$') {
        script.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        match rest[at + 1..at + 1 + digits].parse::<u32>() {
            Ok(n) => script.push_str(&parameter(n)),
            Err(_) => script.push('$'),
        }
        rest = &rest[at + 1 + digits..];
    }
    script.push_str(rest);
    script.push_str(";\n");
    script
}

/// Runs `script` with pgbench on `db_url`; rows per second and how long it ran.
pub(super) fn run(
    script: &str,
    db_url: &str,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Duration)> {
    let program: PathBuf = find_bindir()
        .ok()
        .map(|d| d.join("pgbench"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "pgbench".into());
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), script)?;
    let started = Instant::now();
    let output = Command::new(&program)
        // Prepared, as zegolog runs its statements (pg_stat_statements: a generic plan, one
        // planning in about 25 executions).
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
        ])
        .arg(duration.as_secs().max(1).to_string())
        .arg("-f")
        .arg(file.path())
        .arg(db_url)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed after {elapsed:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tps: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no tps in pgbench output:\n{stdout}"))?;
    Ok((tps * f64::from(BATCH), elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_batch_script_binds_every_parameter() {
        let script = write_batch_script();
        let after_set = script.split_once('\n').unwrap().1;
        assert!(
            !after_set.contains('$'),
            "a parameter was left unbound: {script}"
        );
        assert!(script.contains("INSERT INTO room_logouts"));
        assert!(script.contains("INSERT INTO signature_ledger"));
        assert!(script.trim_end().ends_with(';'));
    }
}
