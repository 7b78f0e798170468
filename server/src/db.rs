//! Connecting to PostgreSQL/PostGIS and applying the embedded migrations, with start-up errors
//! that tell an operator what is wrong and what to run.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DbArgs;

/// The schema, embedded in the binary and applied at start.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

const INSTALL_POSTGIS: &str = "apt-get install -y postgresql-15-postgis-3 (or run: bash scripts/setup.sh)";

/// Who the connections are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// A one-off command (migrate, seed, import, export): behaves like any SQL client.
    Tool,
    /// `gridmap serve`: it drops the report tiles it touches itself, in process, so its
    /// sessions tell the report trigger not to NOTIFY (migration 0006 says why).
    Server,
}

/// Connect, check PostGIS, and apply pending migrations.
pub async fn connect_and_migrate(args: &DbArgs) -> anyhow::Result<PgPool> {
    connect_and_migrate_as(args, Session::Tool).await
}

/// As [`connect_and_migrate`], with the session settings of `session`.
pub async fn connect_and_migrate_as(args: &DbArgs, session: Session) -> anyhow::Result<PgPool> {
    let pool = connect_as(args, session).await?;
    ensure_postgis(&pool).await?;
    // Several instances may start at once (a rolling upgrade, docs/deploy.md): sqlx's migrator
    // holds a per-database advisory lock, so one applies and the others wait, then find nothing
    // to do. An older binary starts against a database a newer one has migrated further
    // (additive migrations), so that an old instance that crashes mid-rollout can come back.
    let mut migrator = sqlx::migrate!("../migrations");
    migrator.set_ignore_missing(true);
    migrator.run(&pool).await.context("applying database migrations failed")?;
    Ok(pool)
}

/// Open the pool and make one round trip, translating the usual failures into advice.
pub async fn connect(args: &DbArgs) -> anyhow::Result<PgPool> {
    connect_as(args, Session::Tool).await
}

async fn connect_as(args: &DbArgs, session: Session) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions =
        args.database_url.parse().with_context(|| "DATABASE_URL is not a valid postgres:// URL".to_string())?;
    let target = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default database)")
    );
    let pool = PgPoolOptions::new()
        .max_connections(args.db_pool)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings every connection before handing it out: one more round trip per request
        // (per report, a tenth of PostgreSQL's time under intake load). Ping only a connection
        // that sat idle for a second: under load none does, and after a database restart the
        // idle ones are found dead here and replaced rather than failing a request.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= Duration::from_secs(1) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        // A statement never runs longer than this unless a route sets its own, shorter limit.
        .after_connect(move |conn, _| {
            Box::pin(async move {
                sqlx::query("set statement_timeout = '30s'").execute(&mut *conn).await?;
                if session == Session::Server {
                    sqlx::query("set gridmap.report_tiles = 'in_process'").execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|err| explain_connect_error(&err, &target))?;
    Ok(pool)
}

fn explain_connect_error(err: &sqlx::Error, target: &str) -> anyhow::Error {
    if let sqlx::Error::Database(db) = err {
        match db.code().as_deref() {
            Some("3D000") => {
                return anyhow!(
                    "database at {target} does not exist: create it with `createdb -h 127.0.0.1 -U postgres gridmap` \
                     (scripts/run.sh does this), or point DATABASE_URL at an existing one"
                );
            }
            Some("28P01" | "28000") => {
                return anyhow!(
                    "PostgreSQL at {target} refused the login ({}): check the user and password in DATABASE_URL",
                    db.message()
                );
            }
            _ => {}
        }
    }
    if matches!(err, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) {
        return anyhow!(
            "cannot reach PostgreSQL at {target} ({err}): start it (e.g. `pg_ctlcluster 15 main start`) or set DATABASE_URL"
        );
    }
    anyhow!("cannot connect to PostgreSQL at {target}: {err}")
}

/// PostGIS must be installed on the server and enabled in this database (enabled here if it is not).
pub async fn ensure_postgis(pool: &PgPool) -> anyhow::Result<()> {
    let (available, enabled, db, role): (bool, bool, String, String) = sqlx::query_as(
        r"select exists (select 1 from pg_available_extensions where name = 'postgis'),
                 exists (select 1 from pg_extension where extname = 'postgis'),
                 current_database()::text, current_user::text",
    )
    .fetch_one(pool)
    .await
    .context("checking for PostGIS failed")?;
    if enabled {
        return Ok(());
    }
    if !available {
        bail!("PostGIS is not installed on the PostgreSQL server: run `{INSTALL_POSTGIS}`, then start gridmap again");
    }
    // Under a lock: two instances starting at once on a fresh database would otherwise both
    // try to create the extension, and one would fail on pg_extension's unique name.
    let created = async {
        let mut tx = pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock(hashtext('gridmap create extension postgis'))")
            .execute(&mut *tx)
            .await?;
        sqlx::query("create extension if not exists postgis").execute(&mut *tx).await?;
        tx.commit().await
    };
    if let Err(err) = created.await {
        let reason = err.as_database_error().map_or_else(|| err.to_string(), |e| e.message().to_string());
        bail!(
            "PostGIS is not enabled in database `{db}` and role `{role}` cannot enable it ({reason}): \
             run `psql -d {db} -c 'CREATE EXTENSION postgis'` as a superuser"
        );
    }
    Ok(())
}

/// Whether every embedded migration has been applied (for `/readyz`).
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("select max(version) from _sqlx_migrations where success").fetch_one(pool).await?;
    Ok(applied.unwrap_or(0) >= latest)
}
