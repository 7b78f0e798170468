//! The HTTP edge: shared state, the router, and the server loop with graceful shutdown.
//! One module per URL segment; `app()` never binds a port, so tests drive it in-process.

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod buildings;
pub mod compression;
pub mod counties;
pub mod emergency;
pub mod error;
pub mod etag;
pub mod extract;
pub mod grids;
pub mod health;
pub mod input;
pub mod leaders;
pub mod limits;
pub mod metrics;
pub mod ogc;
pub mod open311;
pub mod openapi;
pub mod paging;
pub mod points;
pub mod principal;
pub mod reports;
pub mod rounds;
pub mod routes;
pub mod security_headers;
pub mod sentiment;
pub mod static_files;
pub mod stations;
pub mod stats;
pub mod suggestions;
pub mod tiles;
pub mod urls;
pub mod wishes;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use sqlx::PgPool;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use self::error::ApiError;

/// Largest request body accepted by default (1 MiB): a detailed grid boundary fits easily.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// Everything a handler may need; cheap to clone (pools and `Arc`s only).
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub web_dir: PathBuf,
    pub limits: Arc<limits::Limits>,
    /// Vector tiles: cache, in-memory features, renders (http/tiles.rs); writes reach it
    /// through [`AppState::changes`].
    pub tiles: Arc<gridmap_tiles::TileService>,
    /// Report intake: the in-memory grid index, categories, the live feed, the group writer.
    pub reports: crate::reports::ReportMachinery,
    /// Recently seen live tokens (no database round trip per request; see `auth::TokenCache`).
    pub tokens: Arc<crate::auth::TokenCache>,
    /// Serving, draining or stopping (SIGTERM; see health.rs).
    pub lifecycle: Arc<health::Lifecycle>,
    /// `GRIDMAP_PUBLIC_URL` and `GRIDMAP_BASEMAP_URL`: the one source of absolute URLs (`urls`).
    pub urls: urls::PublicUrls,
}

impl AppState {
    pub fn new(pool: PgPool) -> Self {
        let tiles = Arc::new(gridmap_tiles::TileService::new(pool.clone(), gridmap_tiles::TileConfig::default()));
        Self {
            pool,
            web_dir: PathBuf::from("web-map/dist"),
            limits: limits::Limits::from_env(),
            tiles,
            reports: crate::reports::ReportMachinery::default(),
            tokens: Arc::new(crate::auth::TokenCache::default()),
            lifecycle: Arc::new(health::Lifecycle::default()),
            urls: urls::PublicUrls::default(),
        }
    }

    /// What follows a committed write (`crate::changes`), over this state's tile service and
    /// report machinery. Built per write from the fields, so a state whose `tiles` was replaced
    /// (the `serve` command's own tile pool) sends its effects there.
    pub fn changes(&self) -> crate::changes::Changes {
        crate::changes::Changes::new(self.pool.clone(), self.tiles.clone(), self.reports.clone())
    }
}

/// Every handler module's routes with their OpenAPI operations (`routes.rs` says how a module
/// declares them).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(admin::router())
        .merge(api_keys::router())
        .merge(stations::router())
        .merge(buildings::router())
        .merge(leaders::router())
        .merge(suggestions::router())
        .merge(ogc::router())
        .merge(grids::router())
        .merge(counties::router())
        .merge(tiles::router())
        .merge(metrics::router())
        .merge(reports::router())
        .merge(stats::router())
        .merge(points::router())
        .merge(rounds::router())
        .merge(sentiment::router())
        .merge(wishes::router())
        .merge(emergency::router())
        .merge(open311::router())
}

/// Every (method, path template) the server routes, documented in `/api/openapi.json` or not
/// (the authorization table's test reads it); Swagger UI and the static files are not in it.
pub fn route_list() -> Vec<routes::Route> {
    routes::list(routes().get_openapi())
}

/// The whole application as a router (no port bound).
pub fn app(state: AppState) -> Router {
    let web = static_files::serve_dir(&state.web_dir, axum::routing::any(not_found).with_state(()));
    let web = Router::new().fallback_service(web).layer(axum::middleware::from_fn_with_state(
        static_files::VendorVersions::read(&state.web_dir),
        static_files::cache_control,
    ));
    let index_html = std::fs::read_to_string(state.web_dir.join("index.html")).ok();
    let security =
        Arc::new(security_headers::SecurityHeaders::new(index_html.as_deref(), state.urls.basemap_url.as_deref()));
    let (api, operations) = routes().split_for_parts();
    Router::new()
        .merge(api)
        .merge(openapi::router(openapi::document(operations)))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback_service(web)
        .layer(axum::middleware::from_fn(input::check_inputs))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::limit_requests))
        // Outside the rate limit, so that its 429 on an Open311 path is in Open311's shape too.
        .layer(axum::middleware::from_fn(open311::errors_as_open311))
        // Bodies are small JSON unless a route (photo upload) raises its own limit.
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_LIMIT))
        // Answers the handlers build (compression.rs says which); tiles and files come coded.
        .layer(compression::layer())
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(state.clone(), health::close_while_draining))
        // Outermost: every response, errors and static files included (security_headers.rs).
        .layer(axum::middleware::from_fn_with_state(security, security_headers::add))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no resource at {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Serve until SIGTERM or Ctrl-C; then drain for `drain` (`/readyz` 503, everything else still
/// served), stop accepting and let in-flight requests finish.
pub async fn serve(state: AppState, listen: std::net::SocketAddr, drain: std::time::Duration) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (set GRIDMAP_LISTEN to another address)"))?;
    // Other instances' writes: grid index, report tiles, duplicate search, live feed (changes.rs).
    state.changes().follow_other_writers();
    // The grid index for intake, built now in the background rather than by the first report,
    // which would otherwise wait for it with every report behind it (at ×100, 26,700 grids,
    // bench/scale.sh measured ~53 s of waiting when it was built on first use).
    let (index, pool) = (state.reports.index.clone(), state.pool.clone());
    tokio::spawn(async move {
        if let Err(err) = index.get(&pool).await {
            tracing::warn!(%err, "building the grid index at start-up failed; the first report builds it");
        }
    });
    // Other instances' logouts, revocations and account changes (auth.rs).
    crate::auth::spawn_login_listener(state.pool.clone(), state.tokens.clone());
    // How many instances share the rate limits (limits.rs).
    limits::spawn_instance_count(state.pool.clone(), state.limits.clone());
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%local, "gridmap listening");
    println!("gridmap listening on http://{local}");
    let lifecycle = state.lifecycle.clone();
    let drained = async move {
        shutdown_signal().await;
        lifecycle.start_draining();
        tracing::info!(seconds = drain.as_secs_f64(), "draining: /readyz answers 503, requests are still served");
        tokio::time::sleep(drain).await;
        tracing::info!("drain over: no new connections; finishing in-flight requests");
        lifecycle.stop();
    };
    axum::serve(listener, app(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(drained)
        .await
        .context("server error")?;
    tracing::info!("gridmap stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
