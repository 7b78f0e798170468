//! Group commit for intake. Under load, each report as its own statement and transaction spends
//! most of PostgreSQL's time on what every statement pays once — a round trip, executor start,
//! a snapshot, a commit record and its WAL flush — not on the row itself. Reports that arrive
//! while earlier ones are being written are collected and stored by one multi-row statement
//! (one transaction, one durable commit), and each sender gets its own row back only after that
//! commit. At low load a report goes out alone at once: nothing waits for a batch to fill.
//!
//! A batch is all-or-nothing, so if it fails (a grid deleted under it, a deadlock, a statement
//! timeout) every report in it is retried alone: one bad report cannot fail its neighbours.
//! Rows are inserted in idempotency-key order so two batches that both hold resends of the same
//! two keys wait for each other in the same order instead of deadlocking.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::types::Json;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

/// Most reports in one statement. Past a few dozen the per-report cost no longer falls, and a
/// bigger batch only makes its first sender wait longer.
const MAX_BATCH: usize = 32;
/// Batches written at once: one per core keeps PostgreSQL busy while the next batch gathers
/// (on 2 cores, measured with bench/reports.sh: 1 in flight lost a tenth of throughput, 3 or
/// 4 gained nothing and made batches smaller).
fn in_flight() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get).clamp(2, 8)
}
/// Reports waiting for a batch before senders wait to enqueue (back-pressure, not a limit
/// anyone meets: the pool would time out first).
const QUEUE: usize = 4096;

/// One report's row, as intake binds it.
#[derive(Debug, Clone)]
pub struct Row {
    pub category: String,
    pub description: String,
    pub lon: f64,
    pub lat: f64,
    pub input_lon: f64,
    pub input_lat: f64,
    pub crs: &'static str,
    pub accuracy_m: Option<f64>,
    pub location_suspect: bool,
    pub grid_id: Option<i64>,
    pub method: super::status::AssignmentMethod,
    pub subdistrict_id: Option<i64>,
    pub reporter_id: Option<i64>,
    pub key: Option<Uuid>,
    pub hash: Vec<u8>,
    pub photo_count: i32,
    pub created_at: DateTime<Utc>,
    /// The response body's fields known before the insert.
    pub partial: Value,
    pub duplicates: Vec<super::open_reports::Duplicate>,
    /// The reporter's name for the history (`anonymous` without a login).
    pub actor: String,
    /// The generation of the grid index `grid_id` came from (`GridIndex::generation`); an
    /// older one than the database's gets the row assigned again in SQL (migration 0012).
    pub index_generation: Option<i64>,
}

/// One row of the intake INSERT: `(id, grid_id, 201 body)`, or `None` when its idempotency key
/// already existed (nothing was inserted).
pub type Inserted = Option<(i64, Option<i64>, String)>;

struct Pending {
    row: Row,
    reply: oneshot::Sender<Result<Inserted, sqlx::Error>>,
}

/// The intake's group committer (one per `ReportMachinery`; its task starts with the first report).
#[derive(Debug, Default)]
pub struct GroupCommit {
    queue: OnceLock<mpsc::Sender<Pending>>,
    counts: Arc<Counts>,
}

/// Statements and the reports they stored, for `/metrics` (their ratio is the batch size).
#[derive(Debug, Default)]
struct Counts {
    statements: AtomicU64,
    reports: AtomicU64,
    /// Times this instance analyzed the report tables ([`refresh_statistics`]).
    analyzed: AtomicU64,
}

impl Counts {
    /// Count a statement of `reports` rows; `true` when the total has just passed a point at
    /// which the report tables' statistics are checked ([`STATISTICS_CHECKS`]).
    fn add(&self, reports: usize) -> bool {
        self.statements.fetch_add(1, Ordering::Relaxed);
        let before = self.reports.fetch_add(reports as u64, Ordering::Relaxed);
        let after = before + reports as u64;
        STATISTICS_CHECKS.iter().any(|&at| before < at && after >= at)
    }
}

/// Reports written by this instance after which it checks what the planner believes of the
/// report tables (a thousand, then ten times more each time; autovacuum keeps them current
/// after that).
///
/// Why: a report table analyzed while empty (a new deployment, or `vacuum analyze` after an
/// import of the map) has statistics of 0 rows, and the plans PostgreSQL caches for intake's
/// statements in the first few executions — the feed's read of the history, the foreign-key
/// checks of the history row — are seq scans and nested loops over "empty" tables. They stay
/// cached until the table is analyzed again, which autovacuum does a minute or more later: in
/// a burst, each read of the feed scanned the whole history once per row (bench/scale.sh at
/// ×100, whose seeded database is analyzed: the feed's read took 3.4 ms instead of 0.11 ms, and
/// PostgreSQL spent 2.2 ms per report instead of 0.8; bench/RESULTS.md). Analyzing replaces
/// those plans at once.
const STATISTICS_CHECKS: [u64; 4] = [1_000, 10_000, 100_000, 1_000_000];

impl GroupCommit {
    /// Store one report (durably committed when this returns).
    pub async fn insert(&self, pool: &PgPool, row: Row) -> Result<Inserted, sqlx::Error> {
        let queue = self.queue.get_or_init(|| spawn(pool.clone(), Arc::clone(&self.counts)));
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(pending)) = queue.send(Pending { row, reply }).await {
            // The committer is gone (its runtime is shutting down): write this one directly.
            return insert_alone(pool, &pending.row).await;
        }
        answer.await.map_err(|_| sqlx::Error::Protocol("the intake group committer stopped".into()))?
    }

    /// `(statements, reports)` written so far by the group committer.
    pub fn counts(&self) -> (u64, u64) {
        (self.counts.statements.load(Ordering::Relaxed), self.counts.reports.load(Ordering::Relaxed))
    }

    /// Times this instance analyzed the report tables because their statistics lagged behind
    /// what it had written ([`STATISTICS_CHECKS`]).
    pub fn analyzed(&self) -> u64 {
        self.counts.analyzed.load(Ordering::Relaxed)
    }
}

/// The report tables' statistics, brought up to date when PostgreSQL believes the report table
/// holds fewer than half the rows this instance alone has written (see [`STATISTICS_CHECKS`]).
/// Runs beside intake (ANALYZE takes no lock that inserts wait for) and only logs a failure. A
/// role that does not own the tables gets a warning from PostgreSQL and nothing changes: the
/// belief is read again, and only an analysis that moved it is counted.
async fn refresh_statistics(pool: &PgPool, counts: &Counts) {
    const BELIEVED: &str = "select reltuples from pg_class where oid = 'report'::regclass";
    let written = counts.reports.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)] // counts far below 2^53
    let half = written as f64 / 2.0;
    let before: f32 = match sqlx::query_scalar(BELIEVED).fetch_one(pool).await {
        Ok(rows) => rows,
        Err(err) => return tracing::warn!(%err, "reading the report table's statistics failed"),
    };
    if f64::from(before) >= half {
        return;
    }
    if let Err(err) = sqlx::query("analyze report, report_event").execute(pool).await {
        return tracing::warn!(%err, "analyzing the report tables failed");
    }
    match sqlx::query_scalar::<_, f32>(BELIEVED).fetch_one(pool).await {
        Ok(after) if after > before => {
            counts.analyzed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(written, before, after, "analyzed the report tables: their statistics lagged behind intake");
        }
        Ok(after) => tracing::warn!(
            written,
            before,
            after,
            "analyzing the report tables changed nothing (does this role own them?); PostgreSQL plans intake for tables smaller than they are until autovacuum analyzes them"
        ),
        Err(err) => tracing::warn!(%err, "reading the report table's statistics failed"),
    }
}

fn spawn(pool: PgPool, counts: Arc<Counts>) -> mpsc::Sender<Pending> {
    let (queue, mut arrivals) = mpsc::channel::<Pending>(QUEUE);
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(in_flight()));
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
            // Wait for the first report, then take whatever else has arrived meanwhile.
            let Some(first) = arrivals.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match arrivals.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            let (pool, counts) = (pool.clone(), Arc::clone(&counts));
            tokio::spawn(async move {
                write(&pool, &counts, batch).await;
                drop(slot);
            });
        }
    });
    queue
}

/// Write a batch and answer each sender; on failure, retry each report alone.
async fn write(pool: &PgPool, counts: &Arc<Counts>, batch: Vec<Pending>) {
    let mut check = false;
    if batch.len() == 1 {
        let Pending { row, reply } = batch.into_iter().next().expect("one report");
        check |= counts.add(1);
        let _ = reply.send(insert_alone(pool, &row).await);
    } else {
        let rows: Vec<&Row> = batch.iter().map(|p| &p.row).collect();
        match insert_rows(pool, &rows).await {
            Ok(mut stored) => {
                check |= counts.add(rows.len());
                for (pending, result) in batch.into_iter().zip(stored.drain(..)) {
                    let _ = pending.reply.send(Ok(result));
                }
            }
            Err(err) => {
                tracing::warn!(%err, reports = rows.len(), "intake batch failed; storing its reports one by one");
                for pending in batch {
                    check |= counts.add(1);
                    let _ = pending.reply.send(insert_alone(pool, &pending.row).await);
                }
            }
        }
    }
    if check {
        let (pool, counts) = (pool.clone(), Arc::clone(counts));
        tokio::spawn(async move { refresh_statistics(&pool, &counts).await });
    }
}

/// One report through the pool (see [`insert_rows`]).
async fn insert_alone(pool: &PgPool, row: &Row) -> Result<Inserted, sqlx::Error> {
    Ok(insert_rows(pool, &[row]).await?.pop().flatten())
}

/// Reports through the pool: one statement, its own transaction. If the grids changed while it
/// ran (SQLSTATE GM001, migration 0012) it cannot have assigned an outdated row correctly, so
/// it runs once more in a transaction that holds the index lock before the statement starts.
async fn insert_rows(pool: &PgPool, rows: &[&Row]) -> Result<Vec<Inserted>, sqlx::Error> {
    match insert_many(pool, rows).await {
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("GM001") => {
            let mut tx = pool.begin().await?;
            lock_index(&mut tx).await?;
            let stored = insert_many(&mut *tx, rows).await?;
            tx.commit().await?;
            Ok(stored)
        }
        other => other,
    }
}

/// Hold the grid index lock (shared) until the transaction ends: grid changes wait for it, and
/// every later statement of the transaction sees the grids at their current generation.
pub async fn lock_index(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("select gridmap_index_generation(null)").execute(conn).await?;
    Ok(())
}

/// One report inside the caller's transaction, which has called [`lock_index`] first (reports
/// with photos): the batch statement with one row, so there is one INSERT to keep right.
pub async fn insert_one<'e, E>(executor: E, row: &Row) -> Result<Inserted, sqlx::Error>
where
    E: sqlx::PgExecutor<'e>,
{
    Ok(insert_many(executor, &[row]).await?.pop().flatten())
}

/// Many reports, one statement: the same columns as arrays. Returns one entry per row, in order.
async fn insert_many<'e, E>(executor: E, rows: &[&Row]) -> Result<Vec<Inserted>, sqlx::Error>
where
    E: sqlx::PgExecutor<'e>,
{
    fn col<'r, T>(rows: &[&'r Row], f: impl Fn(&'r Row) -> T) -> Vec<T> {
        rows.iter().map(|r| f(r)).collect()
    }
    let returned: Vec<(i64, i64, Option<i64>, String)> = sqlx::query_as(BATCH_SQL)
        .bind(col(rows, |r| r.category.clone()))
        .bind(col(rows, |r| r.description.clone()))
        .bind(col(rows, |r| r.lon))
        .bind(col(rows, |r| r.lat))
        .bind(col(rows, |r| r.input_lon))
        .bind(col(rows, |r| r.input_lat))
        .bind(col(rows, |r| r.crs))
        .bind(col(rows, |r| r.accuracy_m))
        .bind(col(rows, |r| r.location_suspect))
        .bind(col(rows, |r| r.grid_id))
        .bind(col(rows, |r| r.method.as_str()))
        .bind(col(rows, |r| r.subdistrict_id))
        .bind(col(rows, |r| r.reporter_id))
        .bind(col(rows, |r| r.key))
        .bind(col(rows, |r| r.hash.clone()))
        .bind(col(rows, |r| r.photo_count))
        .bind(col(rows, |r| r.created_at))
        .bind(col(rows, |r| Json(&r.partial)))
        .bind(col(rows, |r| Json(&r.duplicates)))
        .bind(col(rows, |r| r.actor.clone()))
        .bind(col(rows, |r| r.index_generation))
        .fetch_all(executor)
        .await?;
    let mut stored: Vec<Inserted> = vec![None; rows.len()];
    for (ord, id, grid_id, response) in returned {
        let slot = usize::try_from(ord - 1).ok().and_then(|i| stored.get_mut(i));
        let slot =
            slot.ok_or_else(|| sqlx::Error::Protocol(format!("intake batch returned row {ord} of {}", rows.len())))?;
        *slot = Some((id, grid_id, response));
    }
    Ok(stored)
}

/// The intake statement: `gridmap_intake_reports` (migrations/functions/reports.sql) stores grid
/// and workers, the report rows and their history rows, for one report or many; the arguments
/// are arrays, one element per report, and each stored row comes back with its position (`ord`,
/// from 1); a row whose key already existed does not come back. A function rather than a
/// statement sent from here so that PostgreSQL plans it once per session instead of on every
/// call (the function's comment has the figures).
const BATCH_SQL: &str = "select ord, id, grid_id, response from gridmap_intake_reports(
    $1::text[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::text[], $8::float8[],
    $9::bool[], $10::int8[], $11::text[], $12::int8[], $13::int8[], $14::uuid[], $15::bytea[], $16::int4[],
    $17::timestamptz[], $18::jsonb[], $19::jsonb[], $20::text[], $21::int8[])";
