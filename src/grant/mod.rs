//! `zegolog grant-analyst ROLE`: a PostgreSQL role that can log in and read the analytics views,
//! and nothing else: no raw table (`callback_events` holds whole callback bodies), no writes,
//! no new objects.
//!
//! Views run with their owner's rights (none of zegolog's is `security_invoker`), so `SELECT`
//! on a view is enough to read it while its tables stay closed. The views are found in the
//! `public` schema, not listed here, so views added by later migrations are granted too (run the
//! command again after an upgrade: it is idempotent). Everything happens in one transaction,
//! ending with a check of the role's effective rights (through `PUBLIC` and role memberships
//! too); if anything beyond the views is readable or writable, nothing is committed.
//!
//! On Citus a view's queries on the shards run as the querying role, so the role reads the
//! views through schema `zegolog_analyst` instead (`schema/citus.sql`: a view per view of
//! public, over a SECURITY DEFINER function returning its rows), which this command grants and
//! puts first in the role's search_path; see docs/citus.md.
//!
//! The password is hashed here (SCRAM-SHA-256, as `psql`'s `\password` does, with RustCrypto's
//! reviewed `pbkdf2` and `hmac`), so PostgreSQL receives and may log only the verifier, never
//! the password.
//!
//!
//! Here: the command ([`run`]; its flags are the binary's), [`grant_analyst`] (the grants, in
//! order) and its [`GrantSummary`]. Beside it: `check.rs`, the check of the role's effective
//! rights before committing, and the views it still cannot read; `scram.rs`, the password
//! verifier.
//!
//! Errors are `anyhow`: this is command-line glue, like the binary's command line (`src/bin/zegolog`).

use std::fmt;

use anyhow::{bail, Context};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, Postgres, Transaction};

use crate::database::Database;

mod check;
mod scram;

use check::{try_views, verify};
use scram::scram_verifier;

/// `zegolog grant-analyst`: `role` with `password` (none: a new role gets none, an existing one
/// keeps its own) on `database` (migrated first, so that the views of this version exist); a
/// summary on stdout.
pub async fn run(database: &Database, role: &str, password: Option<&str>) -> anyhow::Result<()> {
    let database_url = database.url.as_str();
    database.migrated().await?.close().await;

    let options: PgConnectOptions = database_url.parse()?;
    let mut conn =
        PgConnection::connect_with(&options.clone().application_name("zegolog grant-analyst"))
            .await
            .context("connecting to PostgreSQL")?;
    let summary = grant_analyst(&mut conn, role, password).await?;
    let _ = conn.close().await;
    println!("{summary}");
    println!(
        "connect as it (while the database runs) with: psql -h {} -p {} -U {} {}",
        options.get_host(),
        options.get_port(),
        shell_quote(role),
        shell_quote(options.get_database().unwrap_or("postgres")),
    );
    Ok(())
}

/// What [`grant_analyst`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSummary {
    pub role: String,
    pub database: String,
    /// The role was new.
    pub created: bool,
    pub password_set: bool,
    /// The views it may read now (`public` schema), by name.
    pub views: Vec<String>,
    /// On Citus, the schema it reads them through (`zegolog_analyst`, first in its
    /// search_path); `None` on one PostgreSQL.
    pub analyst_schema: Option<String>,
    /// Roles it was a member of, and is no longer.
    pub left_roles: Vec<String>,
    /// Views granted that the role still cannot read, with PostgreSQL's reason: their functions
    /// read tables with the caller's rights. `None`: not checked (this session cannot take the
    /// role).
    pub unreadable_views: Option<Vec<(String, String)>>,
}

impl fmt::Display for GrantSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "role {:?} {} in database {:?}: it can log in and SELECT from {} views, nothing else",
            self.role,
            if self.created { "created" } else { "updated" },
            self.database,
            self.views.len()
        )?;
        write!(f, "  views: {}", self.views.join(", "))?;
        if let Some(schema) = &self.analyst_schema {
            write!(
                f,
                "\n  on Citus: read through schema {schema} (first in its search_path; \
                 public.<view> itself is refused to it there)"
            )?;
        }
        match (self.password_set, self.created) {
            (true, _) => write!(f, "\n  password: set (sent as a SCRAM-SHA-256 verifier)")?,
            (false, true) => write!(
                f,
                "\n  password: none; give one with --password-env VAR to log in over TCP"
            )?,
            (false, false) => write!(f, "\n  password: unchanged")?,
        }
        if !self.left_roles.is_empty() {
            write!(
                f,
                "\n  no longer a member of: {}",
                self.left_roles.join(", ")
            )?;
        }
        match &self.unreadable_views {
            None => write!(
                f,
                "\n  not checked that every view is readable as the role (this session cannot SET ROLE to it)"
            )?,
            Some(views) if views.is_empty() => {}
            Some(views) => {
                write!(
                    f,
                    "\n  warning: {} views are granted but the role cannot read them, because they \
                     read tables with the caller's rights (SECURITY INVOKER functions):",
                    views.len()
                )?;
                for (view, reason) in views {
                    write!(f, "\n    {view}: {reason}")?;
                }
            }
        }
        Ok(())
    }
}

/// Creates or updates `role` as a read-only analyst of the views of the connected database.
/// One transaction: all of it or nothing.
pub async fn grant_analyst(
    conn: &mut PgConnection,
    role: &str,
    password: Option<&str>,
) -> anyhow::Result<GrantSummary> {
    check_role_name(role)?;
    let verifier = password.map(scram_verifier).transpose()?;
    let mut tx = conn.begin().await?;

    let exists = check_existing_role(&mut tx, role).await?;
    if exists {
        refuse_owner(&mut tx, role).await?;
        drop_attributes(&mut tx, role).await?;
    } else {
        create_login_role(&mut tx, role).await?;
    }
    if let Some(verifier) = &verifier {
        set_password(&mut tx, role, verifier).await?;
    }
    let left_roles = leave_other_roles(&mut tx, role).await?;
    let database = allow_connect_only(&mut tx, role).await?;
    revoke_schema_rights(&mut tx, role).await?;
    revoke_public_rights(&mut tx).await?;
    let views = grant_views(&mut tx, role).await?;
    let analyst_schema = grant_analyst_schema(&mut tx, role, &database).await?;
    grant_read_only_functions(&mut tx, role).await?;

    // Before committing: nothing beyond the views may be readable or writable (else nothing is
    // committed), and which views the role still cannot read.
    verify(&mut tx, role, &database).await?;
    let unreadable_views = try_views(&mut tx, role, analyst_schema.as_deref(), &views).await?;
    tx.commit().await?;
    Ok(GrantSummary {
        role: role.to_owned(),
        database,
        created: !exists,
        password_set: verifier.is_some(),
        views,
        analyst_schema,
        left_roles,
        unreadable_views,
    })
}

/// Whether `role` exists already. It may not be the role running this command, nor a superuser.
async fn check_existing_role(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
) -> anyhow::Result<bool> {
    let existing: Option<(bool, bool)> = sqlx::query_as(
        "SELECT rolsuper, rolname IN (current_user, session_user) FROM pg_roles WHERE rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut **tx)
    .await?;
    match existing {
        Some((_, true)) => {
            bail!("{role:?} is the role running this command: an analyst role must be another one")
        }
        Some((true, _)) => bail!(
            "{role:?} is a superuser, which reads and writes everything: choose another name, or \
             take its superuser attribute away first (ALTER ROLE ... NOSUPERUSER)"
        ),
        _ => {}
    }
    Ok(existing.is_some())
}

/// A new role that can log in, and has no other attribute.
async fn create_login_role(tx: &mut Transaction<'_, Postgres>, role: &str) -> anyhow::Result<()> {
    exec(tx, "CREATE ROLE %I LOGIN", &[role]).await
}

/// Refuses an existing role that owns objects in this database: an owner keeps every right on
/// what it owns.
async fn refuse_owner(tx: &mut Transaction<'_, Postgres>, role: &str) -> anyhow::Result<()> {
    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT format('%s %s', kind, name) FROM (
             SELECT 'relation' AS kind, c.oid::regclass::text AS name
             FROM pg_class AS c JOIN pg_roles AS r ON r.oid = c.relowner WHERE r.rolname = $1
             UNION ALL
             SELECT 'schema', n.nspname::text
             FROM pg_namespace AS n JOIN pg_roles AS r ON r.oid = n.nspowner WHERE r.rolname = $1
             UNION ALL
             SELECT 'function', p.oid::regprocedure::text
             FROM pg_proc AS p JOIN pg_roles AS r ON r.oid = p.proowner WHERE r.rolname = $1
             UNION ALL
             SELECT 'database', d.datname::text
             FROM pg_database AS d JOIN pg_roles AS r ON r.oid = d.datdba
             WHERE r.rolname = $1 AND d.datname = current_database()
         ) AS o ORDER BY 1 LIMIT 5",
    )
    .bind(role)
    .fetch_all(&mut **tx)
    .await?;
    if !owned.is_empty() {
        bail!(
            "{role:?} owns objects in this database ({}): an owner keeps every right on what it \
             owns, so it cannot be made read-only; choose another name",
            owned.join(", ")
        );
    }
    Ok(())
}

/// Makes an existing role able to log in and takes away CREATEDB, CREATEROLE, REPLICATION and
/// BYPASSRLS. Only the attributes that must change: changing some of them at all needs a
/// superuser.
async fn drop_attributes(tx: &mut Transaction<'_, Postgres>, role: &str) -> anyhow::Result<()> {
    let attributes: (bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolcanlogin, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(role)
    .fetch_one(&mut **tx)
    .await?;
    let (login, createdb, createrole, replication, bypassrls) = attributes;
    let changes: Vec<&str> = [
        (!login, "LOGIN"),
        (createdb, "NOCREATEDB"),
        (createrole, "NOCREATEROLE"),
        (replication, "NOREPLICATION"),
        (bypassrls, "NOBYPASSRLS"),
    ]
    .into_iter()
    .filter_map(|(change, attribute)| change.then_some(attribute))
    .collect();
    if !changes.is_empty() {
        exec(
            tx,
            &format!("ALTER ROLE %I WITH {}", changes.join(" ")),
            &[role],
        )
        .await?;
    }
    Ok(())
}

/// The role's password, as its SCRAM verifier.
async fn set_password(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
    verifier: &str,
) -> anyhow::Result<()> {
    exec(tx, "ALTER ROLE %I PASSWORD %L", &[role, verifier]).await
}

/// Takes the role out of every other role (a membership would lend it that role's rights);
/// the roles it left.
async fn leave_other_roles(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
) -> anyhow::Result<Vec<String>> {
    let left_roles: Vec<String> = sqlx::query_scalar(
        "SELECT g.rolname::text FROM pg_auth_members AS m
         JOIN pg_roles AS g ON g.oid = m.roleid
         JOIN pg_roles AS r ON r.oid = m.member
         WHERE r.rolname = $1 ORDER BY 1",
    )
    .bind(role)
    .fetch_all(&mut **tx)
    .await?;
    for group in &left_roles {
        exec(tx, "REVOKE %I FROM %I", &[group, role]).await?;
    }
    Ok(left_roles)
}

/// Nothing on the connected database but CONNECT; the database's name.
async fn allow_connect_only(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
) -> anyhow::Result<String> {
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut **tx)
        .await?;
    exec(tx, "REVOKE ALL ON DATABASE %I FROM %I", &[&database, role]).await?;
    exec(tx, "GRANT CONNECT ON DATABASE %I TO %I", &[&database, role]).await?;
    Ok(database)
}

/// Nothing in any schema, nor on anything in one: an update may hold old grants.
async fn revoke_schema_rights(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
) -> anyhow::Result<()> {
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace
         WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1",
    )
    .fetch_all(&mut **tx)
    .await?;
    for schema in &schemas {
        for statement in [
            "REVOKE ALL ON SCHEMA %I FROM %I",
            "REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I",
            "REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I",
            "REVOKE ALL ON ALL ROUTINES IN SCHEMA %I FROM %I",
        ] {
            exec(tx, statement, &[schema, role]).await?;
        }
    }
    Ok(())
}

/// PUBLIC (every role, this one included): nothing on zegolog's tables, and no CREATE in public
/// (PostgreSQL 15 no longer grants it, but a cluster upgraded from 14 keeps it).
async fn revoke_public_rights(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<()> {
    for statement in [
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC",
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    ] {
        sqlx::query(statement).execute(&mut **tx).await?;
    }
    Ok(())
}

/// USAGE on schema public and SELECT on each of its views; the views, by name.
async fn grant_views(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
) -> anyhow::Result<Vec<String>> {
    exec(tx, "GRANT USAGE ON SCHEMA public TO %I", &[role]).await?;
    let views: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class AS c
         JOIN pg_namespace AS n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm')
         ORDER BY 1",
    )
    .fetch_all(&mut **tx)
    .await?;
    for view in &views {
        exec(tx, "GRANT SELECT ON public.%I TO %I", &[view, role]).await?;
    }
    Ok(views)
}

/// On Citus, the role reads the views through schema zegolog_analyst (schema/citus.sql: a view
/// per view of public, over a function that returns its rows as their owner), first in its
/// search_path: Citus runs a view's queries on the shards as the querying role, who may read
/// none of the tables under it. That schema, if there is one; without it the role's
/// search_path in `database` is reset.
async fn grant_analyst_schema(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
    database: &str,
) -> anyhow::Result<Option<String>> {
    let analyst_schema: Option<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname = 'zegolog_analyst'",
    )
    .fetch_optional(&mut **tx)
    .await?;
    match &analyst_schema {
        Some(schema) => {
            exec(tx, "GRANT USAGE ON SCHEMA %I TO %I", &[schema, role]).await?;
            exec(
                tx,
                "GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I",
                &[schema, role],
            )
            .await?;
            exec(
                tx,
                "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I",
                &[schema, role],
            )
            .await?;
            exec(
                tx,
                "ALTER ROLE %I IN DATABASE %I SET search_path = %I, public",
                &[role, database, schema],
            )
            .await?;
        }
        None => {
            exec(
                tx,
                "ALTER ROLE %I IN DATABASE %I RESET search_path",
                &[role, database],
            )
            .await?
        }
    }
    Ok(analyst_schema)
}

/// EXECUTE on the views' windowed forms (`users_online`, `*_between`): they read tables as their
/// owner (SECURITY DEFINER) and are not executable by PUBLIC; read-only ones (not VOLATILE) are
/// part of what an analyst may read. Functions that write, such as the rollup compaction, are
/// volatile and stay out of reach.
async fn grant_read_only_functions(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
) -> anyhow::Result<()> {
    let functions: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p
         JOIN pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public' AND p.prosecdef AND p.provolatile <> 'v'
         ORDER BY 1",
    )
    .fetch_all(&mut **tx)
    .await?;
    for function in &functions {
        // regprocedure's text is already a quoted, schema-qualified signature.
        exec(tx, "GRANT EXECUTE ON FUNCTION %s TO %I", &[function, role]).await?;
    }
    Ok(())
}

/// Runs a statement built by PostgreSQL's own `format()`: `%I` quotes an identifier, `%L` a
/// literal, exactly as the server parses them.
async fn exec(
    tx: &mut Transaction<'_, Postgres>,
    template: &str,
    args: &[&str],
) -> anyhow::Result<()> {
    let statement: String = sqlx::query_scalar("SELECT format($1, VARIADIC $2::text[])")
        .bind(template)
        .bind(args)
        .fetch_one(&mut **tx)
        .await?;
    sqlx::raw_sql(&statement)
        .execute(&mut **tx)
        .await
        .with_context(|| {
            // The only literal is a password verifier: not shown.
            format!("running {}", template.replace("%L", "'...'"))
        })?;
    Ok(())
}

/// A role name PostgreSQL keeps as given: 1 to 63 bytes (longer names are silently cut).
fn check_role_name(role: &str) -> anyhow::Result<()> {
    if role.is_empty() || role.len() > 63 {
        bail!("a role name has 1 to 63 bytes; {role:?} has {}", role.len());
    }
    if role.contains('\0') {
        bail!("a role name cannot hold U+0000");
    }
    if role.starts_with("pg_") {
        bail!("role names starting with pg_ are reserved by PostgreSQL");
    }
    Ok(())
}

fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_names_are_checked() {
        assert!(scram_verifier("").is_err());
        assert!(scram_verifier("pässword").is_err());
        assert!(scram_verifier("tab\tinside").is_err());
        assert!(scram_verifier("a good one!").is_ok());
        assert!(check_role_name("").is_err());
        assert!(check_role_name(&"x".repeat(64)).is_err());
        assert!(check_role_name("pg_monitor").is_err());
        assert!(check_role_name("Analyst \"ops\"").is_ok());
    }
}
