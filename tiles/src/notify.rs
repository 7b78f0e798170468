//! Keeping the cache current when data changes behind the server's back: migration 0002's
//! statement triggers `pg_notify('gridmap_tiles', …)` the EPSG:3857 boxes of every changed row
//! (old and new), and this listener re-reads those boxes into the in-memory features and
//! invalidates exactly the tiles they touch. When the
//! connection drops, notifications may have been missed, so the whole cache is cleared once
//! listening again.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::layer::{Layer, LayerSet};
use crate::service::TileService;
use crate::tile::Bbox;

/// The notification channel the triggers use.
pub const CHANNEL: &str = "gridmap_tiles";

/// The table of the generalised outlines the grids layer draws below z10.
pub const OUTLINE_TABLE: &str = "outline";

/// What a trigger sends: the table that changed and either the boxes of the changed rows
/// (`[min_x, min_y, max_x, max_y]` in EPSG:3857) or `all` (TRUNCATE).
#[derive(Debug, Deserialize, PartialEq)]
pub struct Notification {
    pub table: String,
    #[serde(default)]
    pub boxes: Vec<[f64; 4]>,
    #[serde(default)]
    pub all: bool,
}

impl Notification {
    pub fn parse(payload: &str) -> Result<Notification, serde_json::Error> {
        serde_json::from_str(payload)
    }

    /// The layers drawn from the changed table (none if the table draws no layer).
    pub fn layers(&self) -> LayerSet {
        if self.table == OUTLINE_TABLE {
            return Layer::Grids.into();
        }
        Layer::ALL
            .into_iter()
            .filter(|l| l.announced_by().contains(&self.table.as_str()))
            .fold(LayerSet::EMPTY, LayerSet::with)
    }
}

impl TileService {
    /// Apply one notification payload: re-read the changed features into memory, then drop the
    /// touched tiles from the cache.
    pub async fn apply_notification(&self, payload: &str) {
        self.metrics.notifications.fetch_add(1, Relaxed);
        match Notification::parse(payload) {
            Ok(n) if n.all => {
                for layer in n.layers().iter() {
                    self.store.clear_layer(layer).await;
                }
                self.invalidate_all();
            }
            // Generalised outlines (migration 0029) are read per tile: only the cached grids
            // tiles there go, the in-memory grids stay (their own rows announce themselves).
            Ok(n) if n.table == OUTLINE_TABLE => {
                for [a, b, c, d] in &n.boxes {
                    self.invalidate_cached(Layer::Grids.into(), Bbox::new(*a, *b, *c, *d));
                }
            }
            Ok(n) => {
                let layers = n.layers();
                if layers.is_empty() {
                    return;
                }
                let boxes: Vec<Bbox> = n.boxes.iter().map(|[a, b, c, d]| Bbox::new(*a, *b, *c, *d)).collect();
                self.changed_boxes(layers, &boxes).await;
            }
            Err(err) => {
                // Something changed but we cannot tell where: be safe.
                tracing::warn!(%err, payload, "unreadable tile change notification; reloading every tile layer");
                self.store.clear().await;
                self.invalidate_all();
            }
        }
    }
}

/// The running listener; it stops when this handle is dropped.
pub struct ListenerHandle(tokio::task::JoinHandle<()>);

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// LISTEN on [`CHANNEL`] for as long as the handle lives, reconnecting after failures.
pub fn spawn_listener(service: Arc<TileService>, pool: PgPool) -> ListenerHandle {
    ListenerHandle(tokio::spawn(async move {
        loop {
            match listen(&service, &pool).await {
                Ok(()) => tracing::warn!("tile change listener lost its connection; reconnecting"),
                Err(err) => tracing::warn!(%err, "tile change listener failed; reconnecting"),
            }
            service.listening.store(false, Relaxed);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }))
}

/// The county's calendar is UTC+8 without daylight saving (`gridmap_county_today()` in
/// migrations/functions/leaders.sql): a term runs out at the county's midnight.
const COUNTY_UTC_OFFSET_SECS: u64 = 8 * 3600;

/// Seconds from `now` (Unix seconds) to the county's next midnight.
fn until_county_midnight(now: u64) -> u64 {
    const DAY: u64 = 86_400;
    DAY - (now + COUNTY_UTC_OFFSET_SECS) % DAY
}

/// Drop every cached `leaders` tile at each county midnight, for as long as the handle lives.
/// A term that runs out changes no row, so no trigger announces it; without this the tiles
/// cached the day before would show an expired leader as current until the next change there.
pub fn spawn_day_turns(service: Arc<TileService>) -> ListenerHandle {
    ListenerHandle(tokio::spawn(async move {
        loop {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            // One second past midnight, so that PostgreSQL's clock agrees the day has turned.
            tokio::time::sleep(Duration::from_secs(until_county_midnight(now) + 1)).await;
            let dropped = service.invalidate_cached(LayerSet::LEADERS, Bbox::WORLD);
            tracing::info!(dropped, "county day turned: leader tiles dropped");
        }
    }))
}

async fn listen(service: &TileService, pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    // Changes made while we were not listening were never announced to us.
    service.store.clear().await;
    service.invalidate_all();
    service.listening.store(true, Relaxed);
    tracing::info!(channel = CHANNEL, "tile change listener is listening");
    // try_recv yields None when the connection drops (recv would silently reconnect and
    // hide the gap); we reconnect ourselves so the cache is cleared after every gap.
    while let Some(notification) = listener.try_recv().await? {
        service.apply_notification(notification.payload()).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_county_day_turns_at_sixteen_hundred_utc() {
        // 2026-12-06T15:59:59Z is 23:59:59 in Yiyuan; 16:00:00Z is midnight there.
        let before = 1_796_572_799;
        assert_eq!(until_county_midnight(before), 1);
        assert_eq!(until_county_midnight(before + 1), 86_400);
        assert_eq!(until_county_midnight(before + 1 - 8 * 3600), 8 * 3600);
    }

    #[test]
    fn payloads_name_the_layers_of_their_table() {
        let n = Notification::parse(r#"{"table":"building","boxes":[[1,2,3,4]]}"#).expect("valid");
        // The count layers follow the buildings they count.
        assert_eq!(n.layers(), LayerSet::parse("buildings,coverage,leaders").expect("known"));
        let term = Notification::parse(r#"{"table":"building_leader","boxes":[[1,2,3,4]]}"#).expect("valid");
        assert_eq!(term.layers(), LayerSet::LEADERS);
        assert_eq!(n.boxes, vec![[1.0, 2.0, 3.0, 4.0]]);
        let t = Notification::parse(r#"{"table":"grid","all":true}"#).expect("valid");
        assert!(t.all && t.layers() == LayerSet::parse("grids,coverage,leaders,emergency").expect("known"));
        let e = Notification::parse(r#"{"table":"emergency","boxes":[[1,2,3,4]]}"#).expect("valid");
        assert_eq!(e.layers(), LayerSet::EMERGENCY, "a check-in redraws the emergency counts only");
        assert!(Notification::parse(r#"{"table":"account","boxes":[]}"#).expect("valid").layers().is_empty());
    }
}
