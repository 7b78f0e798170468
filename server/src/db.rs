//! Connecting to PostgreSQL/PostGIS and applying the embedded schema, with start-up errors
//! that tell an operator what is wrong and what to run.
//!
//! The schema is the numbered migrations (`migrations/NNNN_*.sql`, applied once each, never
//! edited) followed by the current copy of every SQL function (`migrations/functions/*.sql`,
//! `create or replace`, applied on every start); migrations/functions/README.md says why.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use sqlx::PgPool;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DbArgs;

/// The numbered migrations, embedded in the binary and applied at start (then [`apply_functions`]).
/// Several instances may start at once (a rolling upgrade, docs/deploy.md): sqlx's migrator holds
/// a per-database advisory lock, so one applies them and the others wait, then find nothing to do.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

include!(concat!(env!("OUT_DIR"), "/function_files.rs"));

/// The advisory lock that serialises [`apply_functions`] across instances starting at once:
/// two sessions replacing the same function concurrently fail ("tuple concurrently updated").
/// 'gridfns' in ASCII, as a number (distinct from migration 0012's index lock).
const FUNCTIONS_LOCK_KEY: i64 = 0x67_7269_6466_6e73;

/// For `#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]`: the numbered migrations
/// and, as one last migration, the function files — a test database gets the schema `gridmap
/// migrate` builds. Only for fresh databases: the last migration's checksum changes whenever a
/// function file does, which a long-lived database would reject.
pub static TEST_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    futures::executor::block_on(Migrator::new(WithFunctions)).expect("the embedded migrations resolve")
});

/// The source of [`TEST_MIGRATOR`]: nothing to read, the migrations are embedded.
#[derive(Debug)]
struct WithFunctions;

impl<'s> sqlx::migrate::MigrationSource<'s> for WithFunctions {
    fn resolve(self) -> futures::future::BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        let mut migrations: Vec<Migration> = MIGRATOR.iter().cloned().collect();
        let version = migrations.iter().map(|m| m.version).max().unwrap_or(0) + 1;
        let sql = FUNCTION_FILES.iter().map(|(_, sql)| *sql).collect::<Vec<_>>().join("\n");
        migrations.push(Migration::new(version, "functions".into(), MigrationType::Simple, sql.into(), false));
        Box::pin(async move { Ok(migrations) })
    }
}

const INSTALL_POSTGIS: &str = "apt-get install -y postgresql-15-postgis-3 (or run: bash scripts/setup.sh)";

/// Who the connections are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// A one-off command (migrate, seed, import, export): behaves like any SQL client.
    Tool,
    /// `gridmap serve`: it drops the report tiles it touches itself, in process, so its
    /// sessions tell the report trigger not to NOTIFY (migration 0006 says why). Its sessions
    /// carry [`instance_name`] as their application name, which is how instances count each
    /// other (`http::limits`: rate limits hold across instances).
    Server,
}

/// What every `gridmap serve` session's `application_name` starts with.
pub const INSTANCE_PREFIX: &str = "gridmap ";

/// This process's `application_name` on the database: the prefix and a random id, so that
/// `pg_stat_activity` tells instances apart (and an operator sees which sessions are gridmap's).
pub fn instance_name() -> &'static str {
    static NAME: LazyLock<String> = LazyLock::new(|| format!("{INSTANCE_PREFIX}{}", uuid::Uuid::new_v4().simple()));
    &NAME
}

/// Connect, check PostGIS, and apply pending migrations.
pub async fn connect_and_migrate(args: &DbArgs) -> anyhow::Result<PgPool> {
    connect_and_migrate_as(args, Session::Tool).await
}

/// As [`connect_and_migrate`], with the session settings of `session`.
pub async fn connect_and_migrate_as(args: &DbArgs, session: Session) -> anyhow::Result<PgPool> {
    let pool = connect_as(args, session).await?;
    ensure_postgis(&pool).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Apply pending numbered migrations, then the function files.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying database migrations failed")?;
    apply_functions(pool).await
}

/// `create or replace` every function from migrations/functions/, in one transaction under an
/// advisory lock, so N instances starting at once replace them one after the other and a
/// session never sees half of the files applied.
pub async fn apply_functions(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await.context("applying SQL functions: begin")?;
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(FUNCTIONS_LOCK_KEY)
        .execute(&mut *tx)
        .await
        .context("applying SQL functions: lock")?;
    for (name, sql) in FUNCTION_FILES {
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("applying migrations/functions/{name} failed"))?;
    }
    tx.commit().await.context("applying SQL functions: commit")?;
    Ok(())
}

/// Open the pool and make one round trip, translating the usual failures into advice.
pub async fn connect(args: &DbArgs) -> anyhow::Result<PgPool> {
    connect_as(args, Session::Tool).await
}

async fn connect_as(args: &DbArgs, session: Session) -> anyhow::Result<PgPool> {
    let mut options: PgConnectOptions =
        args.database_url.parse().with_context(|| "DATABASE_URL is not a valid postgres:// URL".to_string())?;
    if session == Session::Server {
        options = options.application_name(instance_name());
    }
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
