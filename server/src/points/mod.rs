//! Points that can be spent (积分超市, issue 24 §3): who earns what, the catalogue, redemptions
//! and the yearly 最美 rankings. The ledger itself (`points_ledger`, migration 0004) stays the one
//! record of points: earning adds a row, redeeming adds a negative one, cancelling a redemption
//! adds the refund. `reports::points` keeps the reporter's balance and the monthly leaderboard.
//!
//! - **Earning** ([`award`]): a feature says what happened (`event`) to whom, with a reference to
//!   its own record; the rule table (`points_rule`, per event and earning group) says how much,
//!   and whether at all. No amount lives in the code. Once per earner, event and source.
//! - **Spending** ([`market`]): the catalogue with its stock, and redemptions that take the
//!   stock and debit the ledger in one transaction, never below zero, once per `Idempotency-Key`.
//! - **Rankings** ([`rankings`]): the year's earnings per group, names masked.
//!
//! This module is domain only (no HTTP): `http/points.rs` maps [`PointsError`] to statuses.
//! docs/points.md says the rules for people.

pub mod market;
pub mod rankings;

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::auth::Principal;

/// Why a points request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    #[error("{0}")]
    NotFound(String),
    /// 403 with a stable machine reason (`not_your_item`, `own_redemption`, `not_yours`, `role`).
    #[error("{message}")]
    Forbidden { reason: &'static str, message: String },
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("{field}: {message}")]
    Unprocessable { field: &'static str, message: String },
    /// 409 with a stable machine reason (`insufficient_points`, `out_of_stock`,
    /// `item_inactive`, `key_reused`, `not_pending`).
    #[error("{message}")]
    Conflict { reason: &'static str, message: String },
    /// 412: `what` (the item, the rule) has changed since it was read.
    #[error("the {what} has changed since it was read (version {current}); read it again")]
    Stale { what: &'static str, current: i32 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub(crate) fn field(field: &str, message: impl Into<String>) -> PointsError {
    PointsError::Field { field: field.to_string(), message: message.into() }
}

/// Where an award came from: the awarding feature's own record, e.g. `("report", 12)`,
/// `("wish", 3)`, `("door_round", 7)`. An event earns once per earner and source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRef {
    pub kind: &'static str,
    pub id: i64,
}

impl SourceRef {
    pub fn report(id: i64) -> Self {
        Self { kind: "report", id }
    }
    pub fn door_round(id: i64) -> Self {
        Self { kind: "door_round", id }
    }
}

/// What [`award`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Award {
    pub ledger_id: i64,
    pub points: i32,
    pub group_code: String,
    pub rule_id: i64,
}

/// Credit `account_id` for `event` (e.g. `report_accepted`, `wish_completed`,
/// `emergency_checkin`, `door_round_completed`) from `source`, in the caller's transaction,
/// by the rule of the account's earning group (its role's; residents when no group names the
/// role). `None`: nothing written — no active rule for that event and group, or this earner
/// was already credited for this event and source.
pub async fn award(
    conn: &mut PgConnection,
    account_id: i64,
    event: &str,
    source: SourceRef,
) -> Result<Option<Award>, sqlx::Error> {
    award_in_group(conn, account_id, event, None, source).await
}

/// [`award`] in a named group instead of the role's: a registered party member (who has no
/// role of their own) checking in during an emergency earns as `party_members`.
pub async fn award_in_group(
    conn: &mut PgConnection,
    account_id: i64,
    event: &str,
    group: Option<&str>,
    source: SourceRef,
) -> Result<Option<Award>, sqlx::Error> {
    // A report's credit also names the report, as the ledger's rows always have (its
    // `points_ledger_once` and the reversal rely on it).
    let report_id = (source.kind == "report").then_some(source.id);
    sqlx::query_as(
        r"insert into points_ledger (account_id, report_id, delta, reason, rule_id, group_code, source_kind, source_id)
          select a.id, $6, r.points, r.event, r.id, r.group_code, $4, $5
            from account a
            join points_rule r on r.event = $2 and r.active
                              and r.group_code = coalesce($3, gridmap_points_group_of(a.role))
           where a.id = $1
          on conflict do nothing
          returning id as ledger_id, delta as points, group_code, rule_id",
    )
    .bind(account_id)
    .bind(event)
    .bind(group)
    .bind(source.kind)
    .bind(source.id)
    .bind(report_id)
    .fetch_optional(conn)
    .await
}

/// An earning group (`GET /api/points/rules`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Group {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// The account roles that earn in this group.
    pub roles: Vec<String>,
}

/// An earning rule: what `event` earns a member of `group_code`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Rule {
    pub id: i64,
    pub event: String,
    pub group_code: String,
    pub points: i32,
    pub active: bool,
    pub description: String,
    /// Moves with every change: `If-Match` of [`update_rule`] (the ETag is this number).
    pub version: i32,
}

/// A change to a rule (`PATCH /api/points/rules/{id}`): only what is present changes. Which
/// event and group a rule is for is not editable: the features name their events in the code,
/// and a rule for a new group is a new row (a migration or the seed).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    /// 1..=10000 points per award.
    pub points: Option<i32>,
    /// An inactive rule earns nothing (the ledger keeps what it earned before).
    pub active: Option<bool>,
    /// Up to 200 characters, shown to people with the rule.
    pub description: Option<String>,
}

const RULE_COLUMNS: &str = "r.id, r.event, r.group_code, r.points, r.active, r.description, r.version";

/// The body of `GET /api/points/rules`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rules {
    pub groups: Vec<Group>,
    pub rules: Vec<Rule>,
}

/// Every group and rule (public: what earns what is no secret).
pub async fn rules(pool: &PgPool) -> Result<Rules, sqlx::Error> {
    let groups = sqlx::query_as("select code, name_zh, name_en, roles from points_group order by sort, code")
        .fetch_all(pool)
        .await?;
    let rules = sqlx::query_as(&format!(
        "select {RULE_COLUMNS} from points_rule r join points_group g on g.code = r.group_code order by r.event, g.sort, r.id"
    ))
    .fetch_all(pool)
    .await?;
    Ok(Rules { groups, rules })
}

/// One rule (public, as the list).
pub async fn rule(pool: &PgPool, id: i64) -> Result<Rule, PointsError> {
    sqlx::query_as(&format!("select {RULE_COLUMNS} from points_rule r where r.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| PointsError::NotFound(format!("rule {id}")))
}

/// Change a rule's amount, whether it is active, or its description: admins whose login is not
/// scoped to one county (the rules hold for every county of the deployment), with the version
/// read (`If-Match`). Future awards follow it; the ledger keeps what earlier awards earned.
pub async fn update_rule(
    pool: &PgPool,
    who: &Principal,
    id: i64,
    version: i64,
    patch: &RulePatch,
) -> Result<Rule, PointsError> {
    if who.county_id.is_some() {
        return Err(PointsError::Forbidden {
            reason: "county_scoped",
            message: "the earning rules hold for every county: an admin not scoped to one county changes them".into(),
        });
    }
    if let Some(p) = patch.points
        && !(1..=10_000).contains(&p)
    {
        return Err(field("points", "from 1 to 10000"));
    }
    if let Some(d) = &patch.description
        && (d.chars().count() > 200 || d.chars().any(char::is_control))
    {
        return Err(field("description", "up to 200 characters, no control characters"));
    }
    let updated: Option<i64> = sqlx::query_scalar(
        r"update points_rule set points = coalesce($3, points), active = coalesce($4, active),
                 description = coalesce($5, description), version = version + 1
           where id = $1 and version = $2 returning id",
    )
    .bind(id)
    .bind(version)
    .bind(patch.points)
    .bind(patch.active)
    .bind(patch.description.as_deref().map(str::trim))
    .fetch_optional(pool)
    .await?;
    if updated.is_none() {
        let current = rule(pool, id).await?.version;
        return Err(PointsError::Stale { what: "rule", current });
    }
    rule(pool, id).await
}

/// The codes of the groups, in order.
pub async fn group_codes(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("select code from points_group order by sort, code").fetch_all(pool).await
}
