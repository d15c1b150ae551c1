//! Before [`super::grant_analyst`] commits: the role's effective rights (through `PUBLIC` and
//! role memberships too) must be `SELECT` on the views and nothing else, or nothing is
//! committed; and each view is planned as the role, to name those it still cannot read.

use anyhow::bail;
use sqlx::{Connection, Postgres, Transaction};

use super::exec;

/// Plans `SELECT * FROM view` as the role, for each view (resolved by `search_path` first,
/// the role's own on Citus, or else in public): PostgreSQL checks the rights of
/// every table a query reads when it starts executing it, which `EXPLAIN` does without reading
/// a row. A view whose functions run with the caller's rights (a `SECURITY INVOKER` function,
/// inlined or not) reads its tables as the analyst, who may not: such views are returned
/// with PostgreSQL's reason. `None` when this session may not take the role (`SET ROLE` needs
/// membership in it, which a superuser has).
pub(super) async fn try_views(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
    search_path: Option<&str>,
    views: &[String],
) -> anyhow::Result<Option<Vec<(String, String)>>> {
    let mut unreadable = Vec::new();
    for view in views {
        let mut attempt = tx.begin().await?;
        if exec(&mut attempt, "SET LOCAL ROLE %I", &[role])
            .await
            .is_err()
        {
            attempt.rollback().await?;
            return Ok(None);
        }
        let statement: String = match search_path {
            // The name as the role writes it, resolved by its search_path.
            Some(schema) => {
                exec(
                    &mut attempt,
                    "SET LOCAL search_path TO %I, public",
                    &[schema],
                )
                .await?;
                sqlx::query_scalar("SELECT format('EXPLAIN SELECT * FROM %I', $1::text)")
            }
            None => {
                sqlx::query_scalar("SELECT format('EXPLAIN SELECT * FROM public.%I', $1::text)")
            }
        }
        .bind(view)
        .fetch_one(&mut *attempt)
        .await?;
        let planned = sqlx::raw_sql(&statement).execute(&mut *attempt).await;
        // Rolling back the savepoint also ends SET LOCAL ROLE and search_path.
        attempt.rollback().await?;
        if let Err(e) = planned {
            let reason = match &e {
                sqlx::Error::Database(db) => db.message().to_owned(),
                other => other.to_string(),
            };
            unreadable.push((view.clone(), reason));
        }
    }
    Ok(Some(unreadable))
}

/// The role's effective rights (through PUBLIC and memberships included) are SELECT on views
/// and nothing else; an error, and so a rollback, otherwise.
pub(super) async fn verify(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
    database: &str,
) -> anyhow::Result<()> {
    let too_much: Vec<String> = sqlx::query_scalar(
        "SELECT format('%s on %s', p.privilege, c.oid::regclass)
         FROM pg_class AS c
         JOIN pg_namespace AS n ON n.oid = c.relnamespace
         CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
                                 'REFERENCES', 'TRIGGER']) AS p(privilege)
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%'
           AND NOT (c.relkind IN ('v', 'm') AND n.nspname IN ('public', 'zegolog_analyst')
                    AND p.privilege = 'SELECT')
           AND (CASE WHEN c.relkind = 'S'
                     THEN p.privilege IN ('SELECT', 'UPDATE')
                          AND has_sequence_privilege($1, c.oid, p.privilege)
                     ELSE has_table_privilege($1, c.oid, p.privilege) END)
         UNION ALL
         SELECT format('CREATE on schema %I', nspname) FROM pg_namespace
         WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
           AND has_schema_privilege($1, oid, 'CREATE')
         UNION ALL
         SELECT format('CREATE on database %I', $2::text)
         WHERE has_database_privilege($1, $2, 'CREATE')
         ORDER BY 1 LIMIT 10",
    )
    .bind(role)
    .bind(database)
    .fetch_all(&mut **tx)
    .await?;
    if !too_much.is_empty() {
        bail!(
            "after the grants, {role:?} would still have {} (through PUBLIC, a default privilege \
             or another grant this command cannot revoke): nothing was changed",
            too_much.join(", ")
        );
    }
    Ok(())
}
