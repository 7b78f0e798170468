//! Abuse limits: per-token and per-IP rate limits on writes and heavy reads, and a login
//! throttle per account name and per IP. Each refusal is a JSON 429 with `Retry-After`.
//! Quotas come from the environment so a benchmark can raise them (documented in README).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;

/// Requests per second and burst for one kind of limit.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    fn quota(self) -> Quota {
        let nz = |v: u32| NonZeroU32::new(v.max(1)).expect("max(1) is non-zero");
        Quota::per_second(nz(self.per_second)).allow_burst(nz(self.burst))
    }

    /// `NAME=per_second/burst` from the environment, else the default.
    fn from_env(name: &str, default: Rate) -> Rate {
        std::env::var(name)
            .ok()
            .and_then(|v| {
                let (rate, burst) = v.split_once('/')?;
                Some(Rate { per_second: rate.trim().parse().ok()?, burst: burst.trim().parse().ok()? })
            })
            .unwrap_or(default)
    }
}

pub struct Limits {
    writes: DefaultKeyedRateLimiter<String>,
    heavy_reads: DefaultKeyedRateLimiter<String>,
    login_by_name: DefaultKeyedRateLimiter<String>,
    login_by_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl Limits {
    /// Defaults sized for people, not scripts: a rider flushing an offline queue of 20 reports
    /// fits in the write burst; five wrong passwords for one name in a minute are enough.
    pub fn from_env() -> Arc<Self> {
        let writes = Rate::from_env("GRIDMAP_RATE_WRITES", Rate { per_second: 10, burst: 40 });
        let heavy = Rate::from_env("GRIDMAP_RATE_HEAVY_READS", Rate { per_second: 50, burst: 100 });
        Self::with_quotas(writes.quota(), heavy.quota())
    }

    /// Explicit quotas for writes and heavy reads (tests use slow refills so that timing
    /// cannot change the outcome); the login throttle is fixed.
    pub fn with_quotas(writes: Quota, heavy_reads: Quota) -> Arc<Self> {
        Arc::new(Self {
            writes: RateLimiter::keyed(writes),
            heavy_reads: RateLimiter::keyed(heavy_reads),
            login_by_name: RateLimiter::keyed(
                Quota::per_minute(NonZeroU32::new(5).expect("5 > 0")).allow_burst(NonZeroU32::new(5).expect("5 > 0")),
            ),
            login_by_ip: RateLimiter::keyed(
                Quota::per_minute(NonZeroU32::new(30).expect("30 > 0"))
                    .allow_burst(NonZeroU32::new(30).expect("30 > 0")),
            ),
        })
    }

    /// Whether another login attempt for this name from this address may go ahead.
    pub fn check_login(&self, name: &str, ip: IpAddr) -> Result<(), ApiError> {
        let by_name = self.login_by_name.check_key(&name.to_lowercase()).is_ok();
        let by_ip = self.login_by_ip.check_key(&ip).is_ok();
        if by_name && by_ip {
            Ok(())
        } else {
            Err(ApiError::TooManyRequests("too many login attempts; wait a minute and try again".into()))
        }
    }
}

/// Client address: the TCP peer (gridmap is meant to be reached directly or through a proxy
/// that keeps its own limits); in-process tests have none and share one bucket.
pub fn client_ip(request_extensions: &axum::http::Extensions) -> IpAddr {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |ConnectInfo(addr)| addr.ip())
}

/// Who a request counts against: its bearer token (hashed, so keys in memory are not
/// credentials) or else its IP address.
fn key(request: &Request) -> String {
    match request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(value) => format!("t:{}", hex::encode(&Sha256::digest(value.as_bytes())[..12])),
        None => format!("ip:{}", client_ip(request.extensions())),
    }
}

/// What a request counts against. Every write (any method but GET/HEAD/OPTIONS) is a write,
/// so a route added later is limited without anyone remembering to; the login has its own,
/// stricter throttle. Heavy reads are the queries whose cost grows with the data: feature pages,
/// report lists and hexbins, gaps and balance, statistics, Open311 searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Write,
    HeavyRead,
    Other,
}

pub fn classify(method: &axum::http::Method, path: &str) -> Class {
    use axum::http::Method;
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return if path == "/api/auth/login" { Class::Other } else { Class::Write };
    }
    let heavy = (path.starts_with("/ogc/collections/") && path.trim_end_matches('/').ends_with("/items"))
        || matches!(
            path,
            "/api/reports"
                | "/api/reports/hexbins"
                | "/api/grids/gaps"
                | "/api/grids/balance"
                | "/api/stats"
                | "/open311/v2/requests.json"
                | "/api/admin/accounts"
        );
    if heavy { Class::HeavyRead } else { Class::Other }
}

/// Middleware on the whole router: per-token (else per-IP) quotas for writes and heavy reads;
/// a refusal is a JSON 429 with `Retry-After`, before any work is done.
pub async fn limit_requests(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    match classify(request.method(), request.uri().path()) {
        Class::Write if state.limits.writes.check_key(&key(&request)).is_err() => {
            Err(ApiError::TooManyRequests("too many writes; slow down and retry".into()))
        }
        Class::HeavyRead if state.limits.heavy_reads.check_key(&key(&request)).is_err() => {
            Err(ApiError::TooManyRequests("too many requests; slow down and retry".into()))
        }
        _ => Ok(next.run(request).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_method_and_path() {
        use axum::http::Method;
        assert_eq!(classify(&Method::POST, "/api/reports"), Class::Write);
        assert_eq!(classify(&Method::DELETE, "/ogc/collections/grids/items/3"), Class::Write);
        assert_eq!(classify(&Method::POST, "/api/auth/login"), Class::Other);
        assert_eq!(classify(&Method::GET, "/ogc/collections/grids/items"), Class::HeavyRead);
        assert_eq!(classify(&Method::GET, "/ogc/collections/grids/items/3"), Class::Other);
        assert_eq!(classify(&Method::GET, "/api/reports/hexbins"), Class::HeavyRead);
        assert_eq!(classify(&Method::GET, "/tiles/grids/14/1/2.mvt"), Class::Other);
    }

    #[test]
    fn rate_parses_from_env_format() {
        assert_eq!(Rate::from_env("GRIDMAP_TEST_UNSET_RATE", Rate { per_second: 3, burst: 4 }).burst, 4);
    }

    #[test]
    fn login_throttle_stops_the_sixth_attempt_for_one_name() {
        let limits = Limits::from_env();
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        for _ in 0..5 {
            assert!(limits.check_login("Planner", ip).is_ok());
        }
        assert!(limits.check_login("planner", ip).is_err(), "names are throttled case-insensitively");
        assert!(limits.check_login("someone-else", ip).is_ok());
    }
}
