//! The points market (积分超市): the catalogue and redemptions. The rules, in one place
//! (docs/points.md repeats them for people):
//!
//! - **Catalogue**: items of four kinds (goods, property-fee offsets, merchant discounts, free
//!   services), each with a cost, a stock (or unlimited) and exactly one place of hand-over: a
//!   merchant (a `merchant` login), a warm station, or a community. Planners and admins create
//!   and edit them (`If-Match` with the item's version; a redemption changes the stock, so it
//!   moves the version too). The public sees the active items.
//! - **Redeeming**: any login with enough points. One transaction locks the redeemer's account
//!   (so that two redemptions of one account are checked one after the other), checks the
//!   balance, writes the redemption, takes the stock with a conditional update (never below
//!   zero) and writes the debit. Exactly once per `Idempotency-Key`, as report intake: a resend
//!   with the same body gets the stored redemption, the same key with another body is 409.
//! - **Hand-over**: the item's merchant, the host of its station, a grid worker of its
//!   community, or an admin confirms it (`pending` → `handed_over`); nobody confirms their own.
//! - **Cancelling**: the redeemer before the hand-over, or an admin: the points come back and
//!   the stock is restored in one transaction.
//! - **Who sees what**: a redemption is seen by its redeemer, by those who may hand it over,
//!   and by admins; they see the redeemer's masked name (张**), never the login. Nothing of a
//!   redemption is public.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{PointsError, field};
use crate::auth::{Principal, Role};

/// Most of one item in one redemption.
pub const MAX_QUANTITY: i32 = 10;
/// Longest cancel reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

type Result<T> = std::result::Result<T, PointsError>;

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// Goods from the points supermarket (洗衣液, 大米 …).
    Goods,
    /// An offset on the property fee (物业费抵扣).
    PropertyFeeOffset,
    /// A discount at a merchant (商户优惠券).
    MerchantDiscount,
    /// A free service (理发, 家电清洗 …).
    FreeService,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Goods => "goods",
            Self::PropertyFeeOffset => "property_fee_offset",
            Self::MerchantDiscount => "merchant_discount",
            Self::FreeService => "free_service",
        }
    }
}

/// An item of the catalogue.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Item {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// `goods`, `property_fee_offset`, `merchant_discount` or `free_service`.
    pub kind: String,
    /// Points per piece.
    pub cost: i32,
    /// What is left; absent (null): unlimited.
    pub stock: Option<i32>,
    /// `merchant`, `station` or `community`: who hands it over.
    pub place_kind: String,
    pub station_id: Option<i64>,
    pub community_id: Option<i64>,
    /// The merchant's account (planners and admins only; absent for everyone else).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<i64>,
    /// Where to collect it: the item's own text, else the station's or community's name.
    pub place: String,
    pub active: bool,
    /// The item's version: its ETag, for `If-Match` on edits.
    pub version: i32,
}

const ITEM_SQL: &str = r"select i.id, i.name, i.description, i.kind, i.cost, i.stock,
           case when i.merchant_id is not null then 'merchant' when i.station_id is not null then 'station' else 'community' end as place_kind,
           i.station_id, i.community_id, i.merchant_id,
           coalesce(nullif(i.place, ''), s.name, c.name, '') as place, i.active, i.version
      from points_item i
      left join station s on s.id = i.station_id
      left join community c on c.id = i.community_id";

fn may_manage(who: Option<&Principal>) -> bool {
    who.is_some_and(|p| matches!(p.role, Role::Planner | Role::Admin))
}

fn shown(mut item: Item, who: Option<&Principal>) -> Item {
    if !may_manage(who) {
        item.merchant_id = None;
    }
    item
}

/// The catalogue: active items (planners and admins may ask for the inactive too), cheapest
/// first within a kind.
pub async fn catalogue(
    pool: &PgPool,
    who: Option<&Principal>,
    kind: Option<&str>,
    include_inactive: bool,
) -> Result<Vec<Item>> {
    if include_inactive && !may_manage(who) {
        return Err(PointsError::Forbidden {
            reason: "role",
            message: "inactive items are listed for planners and admins only".into(),
        });
    }
    if let Some(k) = kind
        && !["goods", "property_fee_offset", "merchant_discount", "free_service"].contains(&k)
    {
        return Err(field("kind", "one of goods, property_fee_offset, merchant_discount, free_service"));
    }
    let items: Vec<Item> = sqlx::query_as(&format!(
        "{ITEM_SQL} where ($1::text is null or i.kind = $1) and ($2 or i.active) order by i.kind, i.cost, i.id"
    ))
    .bind(kind)
    .bind(include_inactive)
    .fetch_all(pool)
    .await?;
    Ok(items.into_iter().map(|i| shown(i, who)).collect())
}

/// One item (an inactive one for planners and admins only).
pub async fn item(pool: &PgPool, who: Option<&Principal>, id: i64) -> Result<Item> {
    let item: Option<Item> =
        sqlx::query_as(&format!("{ITEM_SQL} where i.id = $1")).bind(id).fetch_optional(pool).await?;
    match item {
        Some(i) if i.active || may_manage(who) => Ok(shown(i, who)),
        _ => Err(PointsError::NotFound(format!("item {id}"))),
    }
}

/// A new catalogue item.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// 1 to 64 characters.
    pub name: String,
    /// Up to 500 characters.
    pub description: Option<String>,
    pub kind: ItemKind,
    /// Points per piece, 1..=100000.
    pub cost: i32,
    /// What is in stock, 0..=1000000; absent: unlimited.
    pub stock: Option<i32>,
    /// Exactly one of `merchant_id` (an account with the role `merchant`), `station_id`,
    /// `community_id`: who hands it over.
    pub merchant_id: Option<i64>,
    pub station_id: Option<i64>,
    pub community_id: Option<i64>,
    /// Where to collect it, as the public sees it (up to 120 characters).
    pub place: Option<String>,
    /// Default true.
    pub active: Option<bool>,
}

/// A change to an item (JSON merge patch: absent fields stay; `stock: null` makes it unlimited).
/// The place of hand-over does not change: a new place is a new item.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub cost: Option<i32>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub stock: Option<Option<i32>>,
    pub place: Option<String>,
    pub active: Option<bool>,
}

/// A field that is present (even as null) is `Some`: merge patch's three cases (absent: keep;
/// null: unlimited; a number) need the nested option.
#[allow(clippy::option_option)]
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn check_text(name: &'static str, value: &str, max: usize, blank_ok: bool) -> Result<()> {
    if (!blank_ok && value.trim().is_empty())
        || value.chars().count() > max
        || value.chars().any(|c| c.is_control() && c != '\n')
    {
        let what = if blank_ok { "" } else { "1 " };
        return Err(field(name, format!("{what}up to {max} characters, no control characters")));
    }
    Ok(())
}

fn check_cost(cost: i32) -> Result<()> {
    if (1..=100_000).contains(&cost) { Ok(()) } else { Err(field("cost", "from 1 to 100000 points")) }
}

fn check_stock(stock: Option<i32>) -> Result<()> {
    match stock {
        Some(s) if !(0..=1_000_000).contains(&s) => Err(field("stock", "from 0 to 1000000, or null for unlimited")),
        _ => Ok(()),
    }
}

/// Create an item (planners and admins; the edge checks the role).
pub async fn create_item(pool: &PgPool, who: &Principal, new: &NewItem) -> Result<Item> {
    check_text("name", &new.name, 64, false)?;
    check_text("description", new.description.as_deref().unwrap_or_default(), 500, true)?;
    check_text("place", new.place.as_deref().unwrap_or_default(), 120, true)?;
    check_cost(new.cost)?;
    check_stock(new.stock)?;
    let places = [new.merchant_id, new.station_id, new.community_id].iter().filter(|p| p.is_some()).count();
    if places != 1 {
        return Err(field("merchant_id", "exactly one of merchant_id, station_id, community_id: who hands it over"));
    }
    if let Some(m) = new.merchant_id {
        let role: Option<String> =
            sqlx::query_scalar("select role from account where id = $1").bind(m).fetch_optional(pool).await?;
        if role.as_deref() != Some("merchant") {
            return Err(PointsError::Unprocessable {
                field: "merchant_id",
                message: format!("account {m} is not a merchant"),
            });
        }
    }
    if let Some(s) = new.station_id
        && !exists(pool, "select exists (select 1 from station where id = $1)", s).await?
    {
        return Err(PointsError::Unprocessable { field: "station_id", message: format!("no station {s}") });
    }
    if let Some(c) = new.community_id
        && !exists(pool, "select exists (select 1 from community where id = $1)", c).await?
    {
        return Err(PointsError::Unprocessable { field: "community_id", message: format!("no community {c}") });
    }
    let id: i64 = sqlx::query_scalar(
        r"insert into points_item (name, description, kind, cost, stock, merchant_id, station_id, community_id, place, active, created_by)
          values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning id",
    )
    .bind(new.name.trim())
    .bind(new.description.as_deref().unwrap_or_default().trim())
    .bind(new.kind.as_str())
    .bind(new.cost)
    .bind(new.stock)
    .bind(new.merchant_id)
    .bind(new.station_id)
    .bind(new.community_id)
    .bind(new.place.as_deref().unwrap_or_default().trim())
    .bind(new.active.unwrap_or(true))
    .bind(&who.name)
    .fetch_one(pool)
    .await?;
    item(pool, Some(who), id).await
}

async fn exists(pool: &PgPool, sql: &str, id: i64) -> Result<bool> {
    Ok(sqlx::query_scalar(sql).bind(id).fetch_one(pool).await?)
}

/// Edit an item if it is still at `version` (else [`PointsError::Stale`]).
pub async fn update_item(pool: &PgPool, who: &Principal, id: i64, version: i64, patch: &ItemPatch) -> Result<Item> {
    if let Some(n) = &patch.name {
        check_text("name", n, 64, false)?;
    }
    if let Some(d) = &patch.description {
        check_text("description", d, 500, true)?;
    }
    if let Some(p) = &patch.place {
        check_text("place", p, 120, true)?;
    }
    if let Some(c) = patch.cost {
        check_cost(c)?;
    }
    if let Some(s) = patch.stock {
        check_stock(s)?;
    }
    let updated: Option<i64> = sqlx::query_scalar(
        r"update points_item set
              name = coalesce($3, name), description = coalesce($4, description), cost = coalesce($5, cost),
              stock = case when $6 then $7 else stock end, place = coalesce($8, place), active = coalesce($9, active),
              version = version + 1
           where id = $1 and version = $2 returning id",
    )
    .bind(id)
    .bind(version)
    .bind(patch.name.as_deref().map(str::trim))
    .bind(patch.description.as_deref().map(str::trim))
    .bind(patch.cost)
    .bind(patch.stock.is_some())
    .bind(patch.stock.flatten())
    .bind(patch.place.as_deref().map(str::trim))
    .bind(patch.active)
    .fetch_optional(pool)
    .await?;
    if updated.is_none() {
        let current: Option<i32> =
            sqlx::query_scalar("select version from points_item where id = $1").bind(id).fetch_optional(pool).await?;
        return Err(match current {
            Some(current) => PointsError::Stale { what: "item", current },
            None => PointsError::NotFound(format!("item {id}")),
        });
    }
    item(pool, Some(who), id).await
}

// ---------------------------------------------------------------------------------------------
// Redemptions

/// A redemption request.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRedemption {
    pub item_id: i64,
    /// 1..=10, default 1.
    pub quantity: Option<i32>,
}

/// A redemption as its redeemer, its hand-over people and admins see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Redemption {
    pub id: i64,
    pub item_id: i64,
    pub item_name: String,
    pub kind: String,
    /// Where to collect it.
    pub place: String,
    pub quantity: i32,
    /// Points debited (cost × quantity).
    pub points: i32,
    /// `pending` (to be handed over), `handed_over` or `cancelled` (points and stock returned).
    pub status: String,
    /// The redeemer as a public list would show them (张**): the one handing over checks the
    /// redemption number on the redeemer's phone, not a name.
    pub redeemer: String,
    /// Whether the caller is the redeemer.
    pub mine: bool,
    pub created_at: DateTime<Utc>,
    pub handed_over_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
}

const REDEMPTION_SQL: &str = r"select r.id, r.item_id, i.name as item_name, i.kind,
           coalesce(nullif(i.place, ''), s.name, c.name, '') as place, r.quantity, r.points, r.status,
           gridmap_points_public_name(a.display_name, a.role) as redeemer, r.account_id = $1 as mine,
           r.created_at, r.handed_over_at, r.cancelled_at, r.cancel_reason
      from points_redemption r
      join points_item i on i.id = r.item_id
      join account a on a.id = r.account_id
      left join station s on s.id = i.station_id
      left join community c on c.id = i.community_id";

/// What redeeming did.
#[derive(Debug)]
pub enum RedeemOutcome {
    Created(Redemption),
    /// A resend of a stored redemption: it as it is now; nothing debited again.
    Replayed(Redemption),
}

/// Whose items a principal hands over: all (admins), a merchant's, a station host's station's,
/// a grid worker's communities'; `None` for everyone else.
#[derive(Debug, Clone, Default)]
struct Handover {
    all: bool,
    merchant: Option<i64>,
    station: Option<i64>,
    communities: Vec<i64>,
}

async fn handover_reach(pool: &PgPool, who: &Principal) -> Result<Option<Handover>> {
    Ok(match who.role {
        Role::Admin => Some(Handover { all: true, ..Handover::default() }),
        Role::Merchant => Some(Handover { merchant: Some(who.account_id), ..Handover::default() }),
        Role::StationHost => {
            let station: Option<i64> = sqlx::query_scalar("select station_id from account where id = $1")
                .bind(who.account_id)
                .fetch_one(pool)
                .await?;
            Some(Handover { station, ..Handover::default() })
        }
        Role::GridWorker => {
            let communities: Vec<i64> = sqlx::query_scalar(
                "select distinct community_id from grid where id = any($1) and community_id is not null order by 1",
            )
            .bind(&who.grid_ids)
            .fetch_all(pool)
            .await?;
            Some(Handover { communities, ..Handover::default() })
        }
        _ => None,
    })
}

impl Handover {
    fn covers(&self, merchant: Option<i64>, station: Option<i64>, community: Option<i64>) -> bool {
        self.all
            || merchant.is_some_and(|m| self.merchant == Some(m))
            || station.is_some_and(|s| self.station == Some(s))
            || community.is_some_and(|c| self.communities.contains(&c))
    }
}

fn payload_hash(body: &NewRedemption, quantity: i32, account_id: i64) -> Vec<u8> {
    Sha256::digest(json!([body.item_id, quantity, account_id]).to_string().as_bytes()).to_vec()
}

async fn view(pool: &PgPool, who: &Principal, id: i64) -> Result<Redemption> {
    sqlx::query_as(&format!("{REDEMPTION_SQL} where r.id = $2"))
        .bind(who.account_id)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| PointsError::NotFound(format!("redemption {id}")))
}

async fn replay(pool: &PgPool, who: &Principal, key: Uuid, hash: &[u8]) -> Result<Option<RedeemOutcome>> {
    let row: Option<(i64, Vec<u8>)> =
        sqlx::query_as("select id, payload_hash from points_redemption where idempotency_key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?;
    match row {
        None => Ok(None),
        Some((id, stored)) if stored == hash => Ok(Some(RedeemOutcome::Replayed(view(pool, who, id).await?))),
        Some(_) => Err(PointsError::Conflict {
            reason: "key_reused",
            message: "this Idempotency-Key was already used for a different redemption".into(),
        }),
    }
}

/// The caller's balance, read inside `tx` after their account row was locked.
async fn balance(tx: &mut Transaction<'_, Postgres>, account_id: i64) -> Result<i64> {
    Ok(sqlx::query_scalar("select coalesce(sum(delta), 0)::bigint from points_ledger where account_id = $1")
        .bind(account_id)
        .fetch_one(&mut **tx)
        .await?)
}

/// Redeem once per key (rules in the module documentation).
pub async fn redeem(pool: &PgPool, who: &Principal, body: &NewRedemption, key: Uuid) -> Result<RedeemOutcome> {
    let quantity = body.quantity.unwrap_or(1);
    let hash = payload_hash(body, quantity, who.account_id);
    // A resend is answered before anything else: even once the item has run out since.
    if let Some(outcome) = replay(pool, who, key, &hash).await? {
        return Ok(outcome);
    }
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(field("quantity", format!("from 1 to {MAX_QUANTITY}")));
    }
    let item: Option<(i32, Option<i32>, bool, String)> =
        sqlx::query_as("select cost, stock, active, name from points_item where id = $1")
            .bind(body.item_id)
            .fetch_optional(pool)
            .await?;
    let Some((cost, _, active, name)) = item else {
        return Err(PointsError::Unprocessable { field: "item_id", message: format!("no item {}", body.item_id) });
    };
    if !active {
        return Err(PointsError::Conflict {
            reason: "item_inactive",
            message: format!("{name} is not offered any more"),
        });
    }
    let points = cost.checked_mul(quantity).ok_or_else(|| field("quantity", "too many points"))?;
    let mut tx = pool.begin().await?;
    // Every debit of one account waits for the one before: the balance read below is then the
    // balance the debit is written against (two phones redeeming at once cannot both spend it).
    sqlx::query("select id from account where id = $1 for update").bind(who.account_id).execute(&mut *tx).await?;
    // A resend racing the first request waited for that lock: it is answered as a resend, not
    // judged again against the balance the first one spent.
    let stored: Option<i64> = sqlx::query_scalar("select id from points_redemption where idempotency_key = $1")
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
    if stored.is_some() {
        drop(tx);
        return replay(pool, who, key, &hash).await?.ok_or_else(|| {
            PointsError::Database(sqlx::Error::Protocol("redemption key vanished during a resend".into()))
        });
    }
    let have = balance(&mut tx, who.account_id).await?;
    if have < i64::from(points) {
        return Err(PointsError::Conflict {
            reason: "insufficient_points",
            message: format!("{name} × {quantity} costs {points} points; the balance is {have}"),
        });
    }
    let id: Option<i64> = sqlx::query_scalar(
        r"insert into points_redemption (item_id, account_id, quantity, points, idempotency_key, payload_hash)
          values ($1, $2, $3, $4, $5, $6)
          on conflict (idempotency_key) do nothing returning id",
    )
    .bind(body.item_id)
    .bind(who.account_id)
    .bind(quantity)
    .bind(points)
    .bind(key)
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        // The same key committed meanwhile (it waited for our account lock): answer as a resend.
        drop(tx);
        return replay(pool, who, key, &hash).await?.ok_or_else(|| {
            PointsError::Database(sqlx::Error::Protocol("redemption key conflict without a stored redemption".into()))
        });
    };
    // The stock, taken only if enough is left (the row lock orders concurrent redemptions).
    let taken: Option<i64> = sqlx::query_scalar(
        r"update points_item
             set stock = stock - $2, version = case when stock is null then version else version + 1 end
           where id = $1 and active and (stock is null or stock >= $2)
          returning id",
    )
    .bind(body.item_id)
    .bind(quantity)
    .fetch_optional(&mut *tx)
    .await?;
    if taken.is_none() {
        return Err(PointsError::Conflict {
            reason: "out_of_stock",
            message: format!("{name}: fewer than {quantity} left"),
        });
    }
    sqlx::query("insert into points_ledger (account_id, delta, reason, redemption_id) values ($1, $2, 'redeemed', $3)")
        .bind(who.account_id)
        .bind(-points)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(RedeemOutcome::Created(view(pool, who, id).await?))
}

/// Which redemptions to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListView {
    /// The caller's own.
    Mine,
    /// Those the caller hands over (merchants, station hosts, grid workers, admins).
    Handover,
}

/// The caller's redemptions, or those they hand over; newest first, at most 200.
pub async fn list(pool: &PgPool, who: &Principal, which: ListView, status: Option<&str>) -> Result<Vec<Redemption>> {
    if let Some(s) = status
        && !["pending", "handed_over", "cancelled"].contains(&s)
    {
        return Err(field("status", "one of pending, handed_over, cancelled"));
    }
    let rows: Vec<Redemption> = match which {
        ListView::Mine => {
            sqlx::query_as(&format!(
                "{REDEMPTION_SQL} where r.account_id = $1 and ($2::text is null or r.status = $2) order by r.id desc limit 200"
            ))
            .bind(who.account_id)
            .bind(status)
            .fetch_all(pool)
            .await?
        }
        ListView::Handover => {
            let Some(reach) = handover_reach(pool, who).await? else {
                return Err(PointsError::Forbidden {
                    reason: "role",
                    message: "hand-overs are for merchants, station hosts, grid workers and admins".into(),
                });
            };
            sqlx::query_as(&format!(
                r"{REDEMPTION_SQL}
                  where ($2::text is null or r.status = $2)
                    and ($3 or i.merchant_id = $4 or i.station_id = $5 or i.community_id = any($6))
                  order by r.status = 'pending' desc, r.id desc limit 200"
            ))
            .bind(who.account_id)
            .bind(status)
            .bind(reach.all)
            .bind(reach.merchant)
            .bind(reach.station)
            .bind(&reach.communities)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows)
}

/// The redemption's row, locked in `tx`: (redeemer, status, quantity, points, item, merchant,
/// station, community).
type Locked = (i64, String, i32, i32, i64, Option<i64>, Option<i64>, Option<i64>);

async fn lock(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<Locked> {
    sqlx::query_as(
        r"select r.account_id, r.status, r.quantity, r.points, r.item_id, i.merchant_id, i.station_id, i.community_id
            from points_redemption r join points_item i on i.id = r.item_id
           where r.id = $1 for update of r",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| PointsError::NotFound(format!("redemption {id}")))
}

/// A redemption's redeemer and its item's merchant, station and community.
type Placed = (i64, Option<i64>, Option<i64>, Option<i64>);

/// One redemption: its redeemer, those who hand it over, admins.
pub async fn get(pool: &PgPool, who: &Principal, id: i64) -> Result<Redemption> {
    let row: Option<Placed> = sqlx::query_as(
        r"select r.account_id, i.merchant_id, i.station_id, i.community_id
            from points_redemption r join points_item i on i.id = r.item_id where r.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some((redeemer, m, s, c)) = row else { return Err(PointsError::NotFound(format!("redemption {id}"))) };
    let hands_over = handover_reach(pool, who).await?.is_some_and(|h| h.covers(m, s, c));
    if redeemer != who.account_id && !hands_over {
        return Err(PointsError::Forbidden {
            reason: "not_yours",
            message: "a redemption is seen by its redeemer, by those who hand it over and by admins".into(),
        });
    }
    view(pool, who, id).await
}

/// Confirm the hand-over (`pending` → `handed_over`).
pub async fn hand_over(pool: &PgPool, who: &Principal, id: i64) -> Result<Redemption> {
    let reach = handover_reach(pool, who).await?;
    let mut tx = pool.begin().await?;
    let (redeemer, status, _, _, _, m, s, c) = lock(&mut tx, id).await?;
    if !reach.is_some_and(|h| h.covers(m, s, c)) {
        return Err(PointsError::Forbidden {
            reason: "not_your_item",
            message:
                "the item's merchant, the host of its station, a grid worker of its community or an admin hands it over"
                    .into(),
        });
    }
    if redeemer == who.account_id {
        return Err(PointsError::Forbidden {
            reason: "own_redemption",
            message: "nobody confirms the hand-over of their own redemption".into(),
        });
    }
    if status != "pending" {
        return Err(PointsError::Conflict {
            reason: "not_pending",
            message: format!("redemption {id} is {status}; only a pending one is handed over"),
        });
    }
    sqlx::query(
        "update points_redemption set status = 'handed_over', handed_over_by = $2, handed_over_at = now() where id = $1",
    )
    .bind(id)
    .bind(who.account_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    view(pool, who, id).await
}

/// A cancellation's body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    /// Why (up to 200 characters).
    pub reason: Option<String>,
}

/// Cancel a pending redemption: the points come back and the stock is restored, in one
/// transaction. The redeemer or an admin.
pub async fn cancel(pool: &PgPool, who: &Principal, id: i64, body: &Cancel) -> Result<Redemption> {
    let reason = body.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = reason {
        check_text("reason", r, MAX_REASON_CHARS, true)?;
    }
    let mut tx = pool.begin().await?;
    let (redeemer, status, quantity, points, item_id, ..) = lock(&mut tx, id).await?;
    if redeemer != who.account_id && who.role != Role::Admin {
        return Err(PointsError::Forbidden {
            reason: "not_yours",
            message: "a redemption is cancelled by its redeemer or an admin".into(),
        });
    }
    if status != "pending" {
        return Err(PointsError::Conflict {
            reason: "not_pending",
            message: format!("redemption {id} is {status}; only a pending one is cancelled"),
        });
    }
    sqlx::query(
        "update points_redemption set status = 'cancelled', cancelled_by = $2, cancelled_at = now(), cancel_reason = $3 where id = $1",
    )
    .bind(id)
    .bind(who.account_id)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        r"update points_item set stock = stock + $2, version = case when stock is null then version else version + 1 end
           where id = $1",
    )
    .bind(item_id)
    .bind(quantity)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into points_ledger (account_id, delta, reason, redemption_id) values ($1, $2, 'redemption_refunded', $3)",
    )
    .bind(redeemer)
    .bind(points)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    view(pool, who, id).await
}
