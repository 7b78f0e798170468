//! The live feed and report effects, whole across instances: every gridmap instance on a
//! database reads the report history (`report_event`) in one order they all agree on, and from
//! each new history row it (1) applies the report's effects here ([`Changes::report_seen`]: the
//! report tiles around it, the open reports of the duplicate search), and (2) sends the change
//! to its live-feed subscribers with the history id as the SSE id, so that a client can resume
//! on any instance (`Last-Event-ID`) without gaps or duplicates.
//!
//! Order: (writing transaction id, history id), delivered only up to the oldest transaction of
//! this database still running — migration 0025 says why history ids alone are not enough. A
//! long write transaction in the database (a bulk import) therefore holds the feed back until it
//! ends; intake is not held.
//!
//! Waking: this instance's own writes call [`Feed::wrote`], which wakes the follower at once and
//! marks the change for the announcer; the announcer sends one `NOTIFY gridmap_report_events`
//! per [`ANNOUNCE_EVERY`] at most, after the commits, from its own session — so intake's commits
//! never queue on the notification lock (migration 0006). Other instances wake on that
//! notification, on `gridmap_reports_reassigned` (0011), after a listener reconnect, and every
//! [`POLL_EVERY`] in any case: a missed notification delays, never loses.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{Notify, broadcast};

use super::ReportChange;
use crate::changes::Changes;

/// The channel instances announce their report writes on.
pub const CHANNEL: &str = "gridmap_report_events";
/// The channel instances announce emergency notices on (`Feed::notice`).
pub const NOTICE_CHANNEL: &str = "gridmap_emergency";
/// At most one announcement per this interval (a burst of reports shares one).
pub const ANNOUNCE_EVERY: Duration = Duration::from_millis(20);
/// The follower reads the history at least this often, notification or not.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// How soon the follower looks again when rows were written but their transactions (or an
/// older one) have not finished (no sooner than [`READ_EVERY`] in any case).
const RETRY_PENDING: Duration = Duration::from_millis(10);
/// The follower reads the history at most this often. Under intake load every commit woke it,
/// and it read the history once per commit — at ×100, 2,060 reads for 4,000 reports, each
/// planned again by PostgreSQL on about half of them: 0.28 ms of PostgreSQL a read, a fifth of
/// the machine at 3,000 reports/s (bench/RESULTS.md). Gathered into one read per 20 ms, a
/// subscriber hears of a change at most 20 ms later.
pub const READ_EVERY: Duration = Duration::from_millis(20);
/// The follower warns (and again every this often) while rows wait longer than this.
const HELD_WARNING: Duration = Duration::from_secs(5);
/// Rows read per round trip.
const PAGE: i64 = 1000;

/// A position in the history order: (transaction id, history id). Rows before migration 0025
/// have no transaction id and sort first (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub xact: u64,
    pub id: i64,
}

/// One history row as the feed sends it.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub position: Position,
    pub change: ReportChange,
}

/// The follower's state, shared by the writers, the follower task and the SSE handler.
#[derive(Debug)]
pub struct Feed {
    events: broadcast::Sender<FeedEvent>,
    /// Everything at or before this position has been sent to `events` (the lock also orders
    /// sending against a subscriber reading it: see [`Feed::subscribe`]).
    delivered: Mutex<Option<Position>>,
    wake: Notify,
    announce: Notify,
    /// Report ids written by this instance since the last announcement (for its payload).
    written_min: AtomicI64,
    written_max: AtomicI64,
    started: AtomicBool,
    /// Emergency-mode notices (`crate::emergency::Notice` as JSON): sent to the live feed as
    /// `event: emergency` without an SSE id, so a client's `Last-Event-ID` stays a report
    /// history id. Other instances hear them on [`NOTICE_CHANNEL`].
    notices: broadcast::Sender<String>,
    /// This instance, in the notices it announces (it hears its own NOTIFY too, and skips it).
    origin: String,
    /// Reads of the history by the follower, for `/metrics` (at most one per [`READ_EVERY`]).
    reads: AtomicU64,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            events: broadcast::channel(4096).0,
            delivered: Mutex::new(None),
            wake: Notify::new(),
            announce: Notify::new(),
            written_min: AtomicI64::new(i64::MAX),
            written_max: AtomicI64::new(i64::MIN),
            started: AtomicBool::new(false),
            notices: broadcast::channel(1024).0,
            origin: uuid::Uuid::new_v4().to_string(),
            reads: AtomicU64::new(0),
        }
    }
}

impl Feed {
    /// Reads of the history this instance's follower made.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// This instance committed a change to report `id`: read the history now and tell the others.
    pub fn wrote(&self, id: i64) {
        self.written_min.fetch_min(id, Ordering::Relaxed);
        self.written_max.fetch_max(id, Ordering::Relaxed);
        self.wake.notify_one();
        self.announce.notify_one();
    }

    /// Someone (another instance, a grid re-draw, a reconnect) may have written history.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Live emergency notices (JSON), from this instance and the others.
    pub fn notices(&self) -> broadcast::Receiver<String> {
        self.notices.subscribe()
    }

    /// Announce an emergency notice (after its commit): to this instance's subscribers at once,
    /// to the other instances through [`NOTICE_CHANNEL`]. A lost announcement loses a live
    /// update only: pages re-read the episode when they (re)connect.
    pub async fn notice(&self, pool: &PgPool, notice: &impl serde::Serialize) {
        let Ok(json) = serde_json::to_string(notice) else { return };
        let _ = self.notices.send(json.clone());
        let payload = serde_json::json!({"origin": self.origin, "notice": json}).to_string();
        if let Err(err) =
            sqlx::query("select pg_notify($1, $2)").bind(NOTICE_CHANNEL).bind(&payload).execute(pool).await
        {
            tracing::warn!(%err, "emergency notice announcement failed");
        }
    }

    /// A notice another instance announced (this instance's own are skipped: sent already).
    pub fn heard_notice(&self, payload: &str) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(payload) else { return };
        if value["origin"].as_str() == Some(self.origin.as_str()) {
            return;
        }
        if let Some(json) = value["notice"].as_str() {
            let _ = self.notices.send(json.to_string());
        }
    }

    /// Subscribe to live events; also returns the position up to which everything has already
    /// been sent (replay from the database up to it, then skip live events at or before it).
    /// `None` until the follower has read its starting point.
    pub fn subscribe(&self) -> (broadcast::Receiver<FeedEvent>, Option<Position>) {
        let receiver = self.events.subscribe();
        let delivered = *self.delivered.lock().expect("feed lock");
        (receiver, delivered)
    }
}

/// Start the follower and the announcer for this instance (once; later calls do nothing).
/// Each history row read goes to [`Changes::report_seen`] before its subscribers get it.
pub fn spawn(changes: &Changes) {
    let feed = &changes.reports().feed;
    if feed.started.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(follow(changes.clone()));
    tokio::spawn(announce(changes.pool().clone(), feed.clone()));
}

async fn announce(pool: PgPool, feed: Arc<Feed>) {
    loop {
        feed.announce.notified().await;
        let first = feed.written_min.swap(i64::MAX, Ordering::Relaxed);
        let last = feed.written_max.swap(i64::MIN, Ordering::Relaxed);
        let payload = serde_json::json!({"first": first.min(last), "last": last}).to_string();
        if let Err(err) = sqlx::query("select pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            // The others still read it within POLL_EVERY.
            tracing::warn!(%err, "report change announcement failed");
        }
        tokio::time::sleep(ANNOUNCE_EVERY).await;
    }
}

async fn follow(changes: Changes) {
    let pool = changes.pool().clone();
    let feed = changes.reports().feed.clone();
    // Since when rows have been waiting for an older transaction, and when that was last said.
    let mut held_since: Option<std::time::Instant> = None;
    let mut warned_at: Option<std::time::Instant> = None;
    loop {
        let wait = match step(&changes).await {
            Ok(true) => {
                let since = *held_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= HELD_WARNING && warned_at.is_none_or(|at| at.elapsed() >= HELD_WARNING) {
                    warned_at = Some(std::time::Instant::now());
                    warn_held(&pool, since.elapsed()).await;
                }
                RETRY_PENDING
            }
            Ok(false) => {
                held_since = None;
                warned_at = None;
                POLL_EVERY
            }
            Err(err) => {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(%err, "reading the report history for the live feed failed");
                POLL_EVERY
            }
        };
        let read_at = tokio::time::Instant::now();
        let _ = tokio::time::timeout(wait, feed.wake.notified()).await;
        tokio::time::sleep_until(read_at + READ_EVERY).await;
    }
}

/// The session holding the feed back: pid, state, application name, transaction age (s).
type Holder = (i32, Option<String>, Option<String>, Option<f64>);

/// The feed is held back by a transaction that has run this long: say which, so it is never
/// silent (docs/deploy.md: a long write transaction in gridmap's database delays the feed).
async fn warn_held(pool: &PgPool, held: Duration) {
    let holder: Result<Option<Holder>, sqlx::Error> = sqlx::query_as(&format!(
        r"select a.pid, a.state, a.application_name,
                 extract(epoch from now() - a.xact_start)::float8
            from pg_stat_activity a
           where a.backend_xid is not null
             and a.backend_xid::text::numeric = ({HORIZON})::text::numeric % 4294967296"
    ))
    .fetch_optional(pool)
    .await;
    match holder {
        Ok(Some((pid, state, application, age))) => tracing::warn!(
            held_seconds = held.as_secs_f64(),
            pid,
            state,
            application,
            transaction_seconds = age,
            "the live feed waits for an older write transaction of this database to end"
        ),
        Ok(None) => tracing::warn!(
            held_seconds = held.as_secs_f64(),
            "the live feed waits for an older write transaction of this database to end"
        ),
        Err(err) => tracing::warn!(%err, held_seconds = held.as_secs_f64(), "the live feed is held back"),
    }
}

/// One read of the history; `true` when rows are waiting for older transactions to finish.
async fn step(changes: &Changes) -> Result<bool, sqlx::Error> {
    let (pool, feed) = (changes.pool(), &changes.reports().feed);
    let start = *feed.delivered.lock().expect("feed lock");
    let Some(mut at) = start else {
        // Start at the present: older history is replayed only to a client that asks.
        let xmin: String = sqlx::query_scalar(&format!("select ({HORIZON})::text")).fetch_one(pool).await?;
        let xact = xmin.parse::<u64>().unwrap_or(0).saturating_sub(1);
        *feed.delivered.lock().expect("feed lock") = Some(Position { xact, id: i64::MAX });
        return Ok(true);
    };
    loop {
        feed.reads.fetch_add(1, Ordering::Relaxed);
        let page = read_after(pool, at, None, PAGE).await?;
        for event in &page.events {
            changes.report_seen(&event.change).await;
        }
        if let Some(last) = page.last {
            let mut delivered = feed.delivered.lock().expect("feed lock");
            for event in page.events {
                let _ = feed.events.send(event);
            }
            *delivered = Some(last);
            at = last;
        }
        if !page.full {
            return Ok(page.pending);
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    xact: Option<String>,
    final_: bool,
    action: String,
    report_id: i64,
    to_status: String,
    grid_id: Option<i64>,
    previous_grid_id: Option<i64>,
    category: String,
    lon: f64,
    lat: f64,
    version: i64,
    created_at: DateTime<Utc>,
}

/// The oldest transaction of this database still running (as xid8), else the next one: rows
/// written by older transactions are final. `pg_snapshot_xmin` alone would be the same for the
/// whole cluster, where a long transaction in another database (a test's seed, another
/// county's import) would hold this feed back. A running transaction counts as another
/// database's only when `pg_stat_activity` says so; one it cannot place (its session ended
/// meanwhile, a prepared transaction, a hidden session) counts as ours — waiting is safe,
/// skipping is not. Evaluated in the statement that reads the rows, so it is the same snapshot.
const HORIZON: &str = r"least(pg_snapshot_xmax(pg_current_snapshot()),
       (select min(x) from pg_snapshot_xip(pg_current_snapshot()) x
         where x::text::numeric % 4294967296 not in
               (select a.backend_xid::text::numeric from pg_stat_activity a
                 where a.datname is distinct from current_database() and a.backend_xid is not null)))";

/// One read of the history.
pub struct Page {
    /// The changes, in feed order.
    pub events: Vec<FeedEvent>,
    /// The position of the last row read that is final (rows the feed does not show included).
    pub last: Option<Position>,
    /// Rows after `last` were written but their transaction (or an older one) is still running.
    pub pending: bool,
    /// The page was full: read again from `last`.
    pub full: bool,
}

/// History rows after `after` (and at or before `until`, if given) whose transactions and every
/// older one have finished, in feed order.
pub async fn read_after(
    pool: &PgPool,
    after: Position,
    until: Option<Position>,
    limit: i64,
) -> Result<Page, sqlx::Error> {
    let until = until.unwrap_or(Position { xact: u64::MAX >> 1, id: i64::MAX });
    let sql = format!(
        r"select e.id, e.xact::text as xact,
                 e.xact < {HORIZON} as final_,
                 e.action, e.report_id, e.to_status, e.grid_id,
                 case when e.action = 'reassign' then
                     (select p.grid_id from report_event p
                       where p.report_id = e.report_id and p.id < e.id and p.action in ('submit', 'reassign')
                       order by p.id desc limit 1) end as previous_grid_id,
                 r.category, ST_X(r.geom) as lon, ST_Y(r.geom) as lat,
                 (select count(*) from report_event v where v.report_id = e.report_id and v.id <= e.id) as version,
                 e.created_at
            from report_event e join report r on r.id = e.report_id
           where (e.xact, e.id) > ($1::text::xid8, $2) and (e.xact, e.id) <= ($3::text::xid8, $4)
           order by e.xact, e.id
           limit $5"
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(after.xact.to_string())
        .bind(after.id)
        .bind(until.xact.to_string())
        .bind(until.id)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    let pending = rows.iter().any(|r| !r.final_);
    let mut last = None;
    let events = rows
        .into_iter()
        .take_while(|r| r.final_)
        .filter_map(|r| {
            let xact = r.xact.as_deref().and_then(|x| x.parse().ok()).unwrap_or(0);
            last = Some(Position { xact, id: r.id });
            let kind = match r.action.as_str() {
                "submit" => "created",
                "transition" => "transition",
                "reassign" => "reassign",
                // Other history (notes, photos) is not a change the feed announces.
                _ => return None,
            };
            Some(FeedEvent {
                position: Position { xact, id: r.id },
                change: ReportChange {
                    kind,
                    event_id: r.id,
                    id: r.report_id,
                    status: r.to_status,
                    category: r.category,
                    grid_id: r.grid_id,
                    previous_grid_id: r.previous_grid_id,
                    lon: r.lon,
                    lat: r.lat,
                    version: i32::try_from(r.version).unwrap_or(i32::MAX),
                    at: Some(r.created_at),
                },
            })
        })
        .collect();
    Ok(Page { events, last, pending, full: full && !pending })
}

/// The feed position of history row `id` (a client's `Last-Event-ID`), if it exists.
pub async fn position_of(pool: &PgPool, id: i64) -> Result<Option<Position>, sqlx::Error> {
    let xact: Option<Option<String>> =
        sqlx::query_scalar("select xact::text from report_event where id = $1").bind(id).fetch_optional(pool).await?;
    Ok(xact.map(|x| Position { xact: x.and_then(|x| x.parse().ok()).unwrap_or(0), id }))
}
