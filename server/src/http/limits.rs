//! Abuse limits: per-account (else per-address) rate limits on writes and heavy reads, and a
//! login throttle on failures per account name and address. Each refusal is a JSON 429 with
//! `Retry-After`. Quotas come from the environment so a benchmark can raise them (README).
//!
//! Who a request counts against is decided here once: the account its bearer token resolves to
//! (so a made-up token, or the same token spelled with extra spaces, is not a fresh bucket),
//! else the client address — the TCP peer, or, when the peer is a reverse proxy listed in
//! `GRIDMAP_TRUSTED_PROXIES`, the address that proxy appended to `X-Forwarded-For`. A header
//! from anyone else is ignored.
//!
//! Several instances behind a load balancer (docs/deploy.md) share each budget: every instance
//! charges a request `N` cells of its bucket, N being the number of instances connected to the
//! database now ([`spawn_instance_count`]), so each grants 1/N of the rate and of the burst and
//! a client spreading its requests over all of them gets the budget once, not N times. Shared
//! counters in PostgreSQL were the other way; they cost a round trip on every limited request
//! (intake's hot path) to save what this costs nothing to do — bench/RESULTS.md has the figures.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

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

/// Wrong passwords allowed per account name and address in a minute.
pub const LOGIN_FAILURES_PER_MINUTE: u32 = 5;
/// Login attempts allowed per address in a minute (whatever the names).
pub const LOGIN_ATTEMPTS_PER_ADDRESS: u32 = 30;
/// Keyed maps are pruned of idle keys once they hold this many.
const PRUNE_ABOVE: usize = 10_000;

/// Addresses (or CIDR blocks) of the reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// `10.0.0.1, 192.168.0.0/16, ::1` → the list; `Err` names the entry that is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut list = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (addr, bits) = entry.split_once('/').map_or((entry, None), |(a, b)| (a, Some(b)));
            let ip: IpAddr = addr.parse().map_err(|_| format!("`{entry}` is not an IP address or CIDR block"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => {
                    b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| format!("`{entry}`: bad prefix"))?
                }
            };
            list.push((ip, bits));
        }
        Ok(Self(list))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries further
    /// left were written by the client and prove nothing).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        forwarded.into_iter().rev().find(|a| !self.contains(*a)).unwrap_or(peer)
    }
}

/// A fixed one-minute window of failures per key (name and address).
#[derive(Default)]
struct Failures(Mutex<HashMap<(String, IpAddr), (u32, Instant)>>);

impl Failures {
    fn blocked(&self, key: &(String, IpAddr), limit: u32) -> Option<u64> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (count, since) = map.get(key)?;
        let left = Duration::from_secs(60).checked_sub(since.elapsed())?;
        (*count >= limit).then(|| left.as_secs().max(1))
    }

    fn record(&self, key: (String, IpAddr)) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, (_, since)| since.elapsed() < Duration::from_secs(60));
        }
        let entry = map.entry(key).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= Duration::from_secs(60) {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn clear(&self, key: &(String, IpAddr)) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }
}

pub struct Limits {
    writes: DefaultKeyedRateLimiter<String>,
    writes_burst: u32,
    heavy_reads: DefaultKeyedRateLimiter<String>,
    heavy_reads_burst: u32,
    /// gridmap instances on this database, this one included (1 until first counted).
    instances: AtomicU32,
    login_failures: Failures,
    login_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    pub trusted_proxies: TrustedProxies,
    checks: AtomicU64,
}

impl Limits {
    /// Defaults sized for people, not scripts: a rider flushing an offline queue of 20 reports
    /// fits in the write burst; five wrong passwords for one name in a minute are enough.
    pub fn from_env() -> Arc<Self> {
        let writes = Rate::from_env("GRIDMAP_RATE_WRITES", Rate { per_second: 10, burst: 40 });
        let heavy = Rate::from_env("GRIDMAP_RATE_HEAVY_READS", Rate { per_second: 50, burst: 100 });
        let limits = Self::with_quotas(writes.quota(), heavy.quota());
        let proxies = std::env::var("GRIDMAP_TRUSTED_PROXIES").unwrap_or_default();
        let trusted_proxies = TrustedProxies::parse(&proxies).unwrap_or_else(|e| {
            // A typo here must not silently trust nobody *or* everybody: nobody is the safe side.
            tracing::error!(error = %e, "GRIDMAP_TRUSTED_PROXIES ignored");
            TrustedProxies::default()
        });
        limits.trusting(trusted_proxies)
    }

    /// The same limits, believing `X-Forwarded-*` from these proxies (call on fresh limits).
    pub fn trusting(self: Arc<Self>, trusted_proxies: TrustedProxies) -> Arc<Self> {
        Arc::new(Self { trusted_proxies, ..Arc::into_inner(self).expect("fresh limits, one owner") })
    }

    /// Explicit quotas for writes and heavy reads (tests use slow refills so that timing
    /// cannot change the outcome); the login throttle is fixed.
    pub fn with_quotas(writes: Quota, heavy_reads: Quota) -> Arc<Self> {
        Arc::new(Self {
            writes: RateLimiter::keyed(writes),
            writes_burst: writes.burst_size().get(),
            heavy_reads: RateLimiter::keyed(heavy_reads),
            heavy_reads_burst: heavy_reads.burst_size().get(),
            instances: AtomicU32::new(1),
            login_failures: Failures::default(),
            login_by_ip: RateLimiter::keyed(
                Quota::per_minute(NonZeroU32::new(LOGIN_ATTEMPTS_PER_ADDRESS).expect("30 > 0"))
                    .allow_burst(NonZeroU32::new(LOGIN_ATTEMPTS_PER_ADDRESS).expect("30 > 0")),
            ),
            trusted_proxies: TrustedProxies::default(),
            checks: AtomicU64::new(0),
        })
    }

    /// Now and then drop the keys whose buckets are full again, so that made-up keys cannot
    /// grow memory without bound.
    fn prune(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed).is_multiple_of(1024) {
            for limiter in [&self.writes, &self.heavy_reads] {
                if limiter.len() > PRUNE_ABOVE {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            }
            if self.login_by_ip.len() > PRUNE_ABOVE {
                self.login_by_ip.retain_recent();
                self.login_by_ip.shrink_to_fit();
            }
        }
    }

    /// How many gridmap instances share the budgets (see the module header).
    pub fn instances(&self) -> u32 {
        self.instances.load(Ordering::Relaxed)
    }

    /// Set by [`spawn_instance_count`]; at least 1.
    pub fn set_instances(&self, n: u32) {
        self.instances.store(n.max(1), Ordering::Relaxed);
    }

    /// One request's share of a bucket: N cells with N instances, so each instance grants 1/N of
    /// the rate and burst. Never more than the burst, which would refuse everything: with more
    /// instances than the burst, each grants one request per refill of N cells.
    fn take(&self, limiter: &DefaultKeyedRateLimiter<String>, burst: u32, key: &RateKey) -> bool {
        let cost = NonZeroU32::new(self.instances().clamp(1, burst.max(1))).expect("clamped to >= 1");
        matches!(limiter.check_key_n(&key.0, cost), Ok(Ok(())))
    }

    /// One more write for a key (each of a batch's items after the first, which the request paid).
    pub fn charge_write(&self, key: &RateKey) -> Result<(), ApiError> {
        if self.take(&self.writes, self.writes_burst, key) {
            Ok(())
        } else {
            Err(ApiError::TooManyRequests("too many writes; slow down and retry".into()))
        }
    }

    /// Whether a login attempt for this name from this address may go ahead: not after
    /// `LOGIN_FAILURES_PER_MINUTE` wrong passwords for this name *from this address* (so nobody
    /// elsewhere can lock the owner out), nor past `LOGIN_ATTEMPTS_PER_ADDRESS` attempts from it.
    pub fn check_login(&self, name: &str, ip: IpAddr) -> Result<(), ApiError> {
        self.prune();
        let too_many = || ApiError::TooManyRequests("too many login attempts; wait a minute and try again".into());
        if self.login_failures.blocked(&(name.to_lowercase(), ip), LOGIN_FAILURES_PER_MINUTE).is_some() {
            return Err(too_many());
        }
        self.login_by_ip.check_key(&ip).map_err(|_| too_many())
    }

    /// A wrong password (or unknown name) for this name from this address.
    pub fn login_failed(&self, name: &str, ip: IpAddr) {
        self.login_failures.record((name.to_lowercase(), ip));
    }

    /// A successful login ends the failure count for this name and address.
    pub fn login_succeeded(&self, name: &str, ip: IpAddr) {
        self.login_failures.clear(&(name.to_lowercase(), ip));
    }

    /// The client address of a request (see the module header).
    pub fn client_ip(&self, request_extensions: &axum::http::Extensions, headers: &HeaderMap) -> IpAddr {
        self.trusted_proxies.client(peer(request_extensions), headers)
    }

    /// Whether the request came straight from a trusted reverse proxy: only then do its
    /// `X-Forwarded-*` headers mean anything (client address here, public URL in `http::urls`).
    pub fn from_trusted_proxy(&self, request_extensions: &axum::http::Extensions) -> bool {
        self.trusted_proxies.contains(peer(request_extensions))
    }
}

/// The TCP peer of a request (loopback for in-process requests, which have no connection).
fn peer(request_extensions: &axum::http::Extensions) -> IpAddr {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |ConnectInfo(addr)| addr.ip())
}

/// The key a request's rate limits count against (`a:<account id>` or `ip:<address>`), left in
/// the request's extensions for handlers that charge more (a batch).
#[derive(Debug, Clone)]
pub struct RateKey(pub String);

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

/// Middleware on the whole router: per-account (else per-address) quotas for writes and heavy
/// reads; a refusal is a JSON 429 with `Retry-After`, before any work is done. The account is
/// resolved here (and left for the handler's `Auth`/`MaybeAuth`, which then skip the lookup).
pub async fn limit_requests(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let class = classify(request.method(), request.uri().path());
    if class == Class::Other {
        return Ok(next.run(request).await);
    }
    let limits = &state.limits;
    limits.prune();
    let token = super::principal::bearer_token(request.headers());
    // A login token resolves to its account (kept for the handler); a static API key (a desktop
    // GIS's) to the account it acts for; anything else is counted by address.
    let (principal, key_account) = match token {
        Some(token) if crate::api_keys::is_api_key(&token) => {
            (None, crate::api_keys::account_of(&state.pool, &token).await?)
        }
        Some(token) => (state.tokens.authenticate(&state.pool, &token).await?, None),
        None => (None, None),
    };
    let key = RateKey(match (&principal, key_account) {
        (Some(p), _) => format!("a:{}", p.account_id),
        (None, Some(account)) => format!("a:{account}"),
        (None, None) => format!("ip:{}", limits.client_ip(request.extensions(), request.headers())),
    });
    let refused = match class {
        Class::Write => !limits.take(&limits.writes, limits.writes_burst, &key),
        _ => !limits.take(&limits.heavy_reads, limits.heavy_reads_burst, &key),
    };
    if refused {
        let what = if class == Class::Write { "writes" } else { "requests" };
        return Err(ApiError::TooManyRequests(format!("too many {what}; slow down and retry")));
    }
    if let Some(p) = principal {
        request.extensions_mut().insert(p);
    }
    request.extensions_mut().insert(key);
    Ok(next.run(request).await)
}

/// How often an instance counts the others. A new instance is counted within this time; until
/// then the budgets are briefly N/(N-1) of the limit — the price of not asking the database on
/// every request.
const COUNT_INSTANCES_EVERY: Duration = Duration::from_secs(2);

/// Count the gridmap instances connected to this database (each `gridmap serve` session names
/// itself `db::instance_name()`; its listeners stay connected while it runs, so an instance is
/// counted exactly while it is alive, and a crashed one stops counting when PostgreSQL drops its
/// sessions) into `limits`, every [`COUNT_INSTANCES_EVERY`].
pub fn spawn_instance_count(pool: sqlx::PgPool, limits: Arc<Limits>) {
    tokio::spawn(async move {
        loop {
            let counted: Result<i64, sqlx::Error> = sqlx::query_scalar(
                "select count(distinct application_name) from pg_stat_activity
                  where datname = current_database() and starts_with(application_name, $1)",
            )
            .bind(crate::db::INSTANCE_PREFIX)
            .fetch_one(&pool)
            .await;
            match counted {
                Ok(n) => limits.set_instances(u32::try_from(n).unwrap_or(u32::MAX)),
                Err(_) if pool.is_closed() => return,
                // Keep the last count: a database hiccup must not multiply every budget.
                Err(err) => tracing::warn!(%err, "counting gridmap instances failed; keeping the last count"),
            }
            tokio::time::sleep(COUNT_INSTANCES_EVERY).await;
        }
    });
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
    fn with_n_instances_each_grants_one_nth_of_the_burst() {
        let quota = Quota::per_hour(NonZeroU32::new(1).expect("1")).allow_burst(NonZeroU32::new(10).expect("10"));
        let granted = |instances: u32| {
            let limits = Limits::with_quotas(quota, quota);
            limits.set_instances(instances);
            let key = RateKey("ip:192.0.2.1".into());
            (0..20).filter(|_| limits.charge_write(&key).is_ok()).count()
        };
        assert_eq!(granted(1), 10);
        assert_eq!(granted(2), 5);
        assert_eq!(granted(3), 3);
        assert_eq!(granted(10), 1);
        assert_eq!(granted(50), 1, "more instances than the burst still grant one request each");
    }

    #[test]
    fn rate_parses_from_env_format() {
        assert_eq!(Rate::from_env("GRIDMAP_TEST_UNSET_RATE", Rate { per_second: 3, burst: 4 }).burst, 4);
    }

    #[test]
    fn five_failures_for_a_name_stop_that_address_only() {
        let limits = Limits::from_env();
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let owner = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        for _ in 0..10 {
            assert!(limits.check_login("Planner", ip).is_ok(), "successful attempts are not counted");
        }
        for _ in 0..5 {
            assert!(limits.check_login("Planner", ip).is_ok());
            limits.login_failed("Planner", ip);
        }
        assert!(limits.check_login("planner", ip).is_err(), "names are throttled case-insensitively");
        assert!(limits.check_login("someone-else", ip).is_ok());
        assert!(limits.check_login("planner", owner).is_ok(), "the owner's own address is not locked out");
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, ::1").expect("parses");
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.1.1".parse().expect("header"));
        let stranger: IpAddr = "198.51.100.7".parse().expect("ip");
        assert_eq!(proxies.client(stranger, &headers), stranger, "a header from anyone else is ignored");
        let proxy: IpAddr = "10.2.3.4".parse().expect("ip");
        let client: IpAddr = "203.0.113.9".parse().expect("ip");
        assert_eq!(proxies.client(proxy, &headers), client, "the right-most untrusted entry");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert!(proxies.contains("::1".parse().expect("ip")));
    }
}
