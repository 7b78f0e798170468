//! Micro-wishes (微心愿, issue 24 §1): a resident publishes a small wish (a light bulb changed, a
//! ride to the clinic, help with a form) for their building; a volunteer or a grid worker claims
//! it, fulfils it, and the resident or a worker of the grid confirms. The rules, in one place
//! (docs/wishes.md repeats them for people):
//!
//! ```text
//! published (发布) → claimed (认领) | withdrawn (撤回, reason) | failed (无法完成, reason)
//! claimed   (认领) → completed (完成) | published (released) | withdrawn (reason) | failed (reason)
//! completed (完成) → confirmed (确认)
//! ```
//!
//! - **Who publishes**: a resident, for their home building (`account.building_id`, set by the
//!   community worker who made the account); a grid worker for a building of their grid, on a
//!   resident's behalf, with the resident's name and phone (private); an admin anywhere.
//! - **Who claims**: volunteers and grid workers (any grid), never the wish's own resident.
//!   First come: the claim is a conditional update (`… where state = 'published' and version =
//!   …`), so of two concurrent claims exactly one wins and the other gets 409 `already_claimed`.
//! - **Who does the rest**: the claimant completes or releases their claim, or says it cannot
//!   be done (failed, with a reason); the resident or a worker of the wish's grid confirms a
//!   completed wish (never the claimant: four-eyes) and withdraws a wish (with a reason); a
//!   worker of the grid may also release a claim or mark a wish failed. Admins may do all but
//!   claim.
//! - **Who sees what**: anyone sees a wish's text, category, desired date, state, grid and
//!   community — never the resident, the exact building, who entered it or who claimed it. The
//!   claimant sees the building and the resident's contact while they hold the claim; the
//!   resident sees their wishes with the claimant's display name; the grid's workers, planners
//!   and admins (a county-scoped one: their county) see everything, history included.
//!
//! - **A photo** (optional, one per wish; `POST /api/wishes/{id}/photo`, multipart part
//!   `photo`): the resident, whoever entered the wish, a worker of its grid or an admin attach
//!   or replace it while the wish is open (published or claimed). It is checked by content and
//!   stripped of its metadata as report photos are (`reports::photos`: EXIF, XMP, GPS, C2PA).
//!   It shows a home from inside, so it is **never public**: the resident (and who entered
//!   it), the claimant (while they hold the claim and after) and staff — the grid's workers,
//!   planners, admins — see it; the public board does not even say there is one.
//!
//! Every write takes `If-Match` with the wish's version (its ETag), as report transitions do.
//! No HTTP here: the edge (`http/wishes.rs`) maps [`WishError`] to its statuses.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::auth::{Principal, Role};

/// The longest wish text, in characters.
pub const MAX_BODY_CHARS: usize = 500;
/// The longest reason (withdrawn, failed, released), in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// How far ahead the desired date may be.
pub const MAX_DAYS_AHEAD: i64 = 90;
/// The most wishes a list returns.
pub const MAX_LIST: i64 = 1000;

/// The fixed categories: `(id, 中文, English)`.
pub const CATEGORIES: [(&str, &str, &str); 6] = [
    ("daily_help", "生活帮扶", "Daily help"),
    ("medical_trip", "就医出行", "Trip to the doctor"),
    ("errands", "代办事务", "Errands and forms"),
    ("repair", "维修", "Small repairs"),
    ("companionship", "陪伴", "Companionship"),
    ("other", "其他", "Other"),
];

/// Where a wish is (`wish.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WishState {
    /// 发布: on the board, waiting for a claimant.
    Published,
    /// 认领: one claimant is on it.
    Claimed,
    /// 完成: the claimant says it is done.
    Completed,
    /// 确认: the resident or the grid's worker confirmed it.
    Confirmed,
    /// 撤回: withdrawn by the resident or the grid's worker.
    Withdrawn,
    /// 无法完成: cannot be done (the reason says why).
    Failed,
}

impl WishState {
    pub const ALL: [Self; 6] =
        [Self::Published, Self::Claimed, Self::Completed, Self::Confirmed, Self::Withdrawn, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Claimed => "claimed",
            Self::Completed => "completed",
            Self::Confirmed => "confirmed",
            Self::Withdrawn => "withdrawn",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The allowed next states — the one list of transitions (`published` from `claimed` is a
    /// released claim).
    pub fn next(self) -> &'static [Self] {
        use WishState::{Claimed, Completed, Confirmed, Failed, Published, Withdrawn};
        match self {
            Self::Published => &[Claimed, Withdrawn, Failed],
            Self::Claimed => &[Completed, Published, Withdrawn, Failed],
            Self::Completed => &[Confirmed],
            Self::Confirmed | Self::Withdrawn | Self::Failed => &[],
        }
    }

    /// Steps that need a reason.
    pub fn needs_reason(self) -> bool {
        matches!(self, Self::Withdrawn | Self::Failed)
    }
}

/// Why a step was refused: the stable `reason` of the error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 403: this role takes no part in wishes (or not in this step).
    RoleCannotAct,
    /// 403: a grid worker, but not of the wish's grid.
    NotYourGrid,
    /// 403: a resident, but not the wish's.
    NotYourWish,
    /// 403: only the claimant holding the claim does this.
    NotTheClaimant,
    /// 403: a resident claiming their own wish, or a claimant confirming their own work.
    OwnWish,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoleCannotAct => "role_cannot_act",
            Self::NotYourGrid => "not_your_grid",
            Self::NotYourWish => "not_your_wish",
            Self::NotTheClaimant => "not_the_claimant",
            Self::OwnWish => "own_wish",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::RoleCannotAct => "this role takes no part in this step of a wish",
            Self::NotYourGrid => "only the workers of the wish's grid (or an admin) may do this",
            Self::NotYourWish => "only the wish's own resident (or the grid's worker) may do this",
            Self::NotTheClaimant => "only the volunteer holding the claim may do this",
            Self::OwnWish => "not your own wish: someone else claims it, and someone else confirms your work",
        }
    }
}

/// Why a wish request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WishError {
    #[error("no wish {0}")]
    NotFound(i64),
    /// 400 with the field at fault and a machine reason.
    #[error("{field}: {message}")]
    Field { field: &'static str, message: String, reason: &'static str },
    #[error("{message}")]
    Forbidden { message: String, reason: &'static str },
    /// 422: the request names something that does not exist or cannot take a wish.
    #[error("{field}: {message}")]
    Unprocessable { field: &'static str, message: String },
    #[error("this needs If-Match with the wish's version (its ETag)")]
    VersionRequired,
    #[error("the wish changed (version {current}); reload it and try again")]
    Stale { current: i32 },
    /// 409 with a machine reason (`already_claimed`, `transition_not_allowed`).
    #[error("{message}")]
    Conflict { reason: &'static str, message: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn field(field: &'static str, reason: &'static str, message: impl Into<String>) -> WishError {
    WishError::Field { field, message: message.into(), reason }
}

fn refused(refusal: Refusal) -> WishError {
    WishError::Forbidden { message: refusal.message().into(), reason: refusal.as_str() }
}

/// What the rule needs to know about a wish.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub state: WishState,
    pub grid_id: Option<i64>,
    pub resident_id: Option<i64>,
    pub claimant_id: Option<i64>,
}

/// May `actor` move a wish with these facts to `to`, as far as *who* acts is concerned?
/// (Whether the state may go there is [`WishState::next`].)
pub fn permission(actor: &Principal, facts: &Facts, to: WishState) -> Result<(), Refusal> {
    let admin = actor.role == Role::Admin;
    let grid_worker = actor.role == Role::GridWorker;
    let of_grid = admin || (grid_worker && facts.grid_id.is_some_and(|g| actor.works_grid(g)));
    let resident = facts.resident_id == Some(actor.account_id);
    let holds_claim = facts.state == WishState::Claimed && facts.claimant_id == Some(actor.account_id);
    // The refusal a caller gets when the step is not theirs: the most specific one.
    let not_staff = || {
        if grid_worker {
            Refusal::NotYourGrid
        } else if actor.role == Role::Resident {
            Refusal::NotYourWish
        } else {
            Refusal::RoleCannotAct
        }
    };
    match to {
        WishState::Claimed => {
            if !matches!(actor.role, Role::Volunteer | Role::GridWorker) {
                return Err(Refusal::RoleCannotAct);
            }
            if resident {
                return Err(Refusal::OwnWish);
            }
            Ok(())
        }
        WishState::Completed => {
            if holds_claim || admin {
                Ok(())
            } else {
                Err(Refusal::NotTheClaimant)
            }
        }
        WishState::Published | WishState::Failed => {
            if holds_claim || of_grid {
                Ok(())
            } else if actor.role == Role::Volunteer {
                Err(Refusal::NotTheClaimant)
            } else {
                Err(not_staff())
            }
        }
        WishState::Confirmed => {
            if facts.claimant_id == Some(actor.account_id) {
                return Err(Refusal::OwnWish);
            }
            if resident || of_grid { Ok(()) } else { Err(not_staff()) }
        }
        WishState::Withdrawn => {
            if resident || of_grid {
                Ok(())
            } else {
                Err(not_staff())
            }
        }
    }
}

/// The steps `actor` may take now: [`WishState::next`] filtered by [`permission`].
pub fn allowed_next(actor: Option<&Principal>, facts: &Facts) -> Vec<WishState> {
    let Some(actor) = actor else { return Vec::new() };
    facts.state.next().iter().copied().filter(|to| permission(actor, facts, *to).is_ok()).collect()
}

/// The body of `POST /api/wishes`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWish {
    /// The building the wish is for. A resident leaves it out (their home building); a grid
    /// worker names a building of their grid.
    pub building_id: Option<i64>,
    /// One of `GET /api/wishes/categories`: `daily_help`, `medical_trip`, `errands`, `repair`,
    /// `companionship`, `other`.
    pub category: String,
    /// What is wished for: 1 to 500 characters.
    pub body: String,
    /// The day the resident would like it done: today (UTC+8) to 90 days ahead.
    pub desired_on: NaiveDate,
    /// On a resident's behalf (grid workers, admins): the resident's name (private), 1 to 64
    /// characters. Residents entering their own wish leave it out.
    pub resident_name: Option<String>,
    /// On a resident's behalf: the resident's phone (private), 3 to 32 of digits, spaces, `+ ( ) -`.
    pub resident_phone: Option<String>,
}

/// The body of `POST /api/wishes/{id}/transitions`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WishTransition {
    /// The next state: `claimed`, `completed`, `confirmed`, `withdrawn`, `failed`, or
    /// `published` (a claim released).
    pub to: String,
    /// Why: required for `withdrawn` and `failed`, optional when releasing (`published`), none
    /// otherwise; at most 500 characters.
    pub reason: Option<String>,
}

/// The building of a wish, for those who may know it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WishBuilding {
    pub id: i64,
    pub name: Option<String>,
    pub lon: f64,
    pub lat: f64,
}

/// The resident's contact: to the claimant while they hold the claim, and to staff.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Contact {
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// One step of a wish's history (staff only).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WishEvent {
    pub from_state: Option<String>,
    pub to_state: String,
    /// The login of who took the step.
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// A wish as this viewer may see it. Everyone gets the public fields; `building`, `contact`,
/// `claimant`, `end_reason` and `history` only go to those the module documentation names.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WishView {
    pub id: i64,
    pub category: String,
    pub body: String,
    pub desired_on: NaiveDate,
    pub state: WishState,
    pub grid_id: Option<i64>,
    pub grid_code: Option<String>,
    pub grid_name: Option<String>,
    pub community_id: Option<i64>,
    pub community_name: Option<String>,
    pub published_at: DateTime<Utc>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The wish's version: its ETag, for `If-Match` on a transition.
    pub version: i32,
    /// The steps the viewer may take now (none for an anonymous viewer).
    pub allowed_next: Vec<WishState>,
    /// The viewer published it, it was entered for them, or they claimed it.
    pub mine: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub building: Option<WishBuilding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// The claimant's display name (to the resident and staff).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimant: Option<String>,
    /// Why it was withdrawn or failed (to the resident, the claimant and staff).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// Every step, oldest first (staff, one wish at a time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<WishEvent>>,
    /// Whether the wish has a photo (`GET /api/wishes/{id}/photo`), to those who may see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_photo: Option<bool>,
}

/// Everything about a wish; [`Row::finish`] keeps what the viewer may see.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    category: String,
    body: String,
    desired_on: NaiveDate,
    state: String,
    grid_id: Option<i64>,
    grid_code: Option<String>,
    grid_name: Option<String>,
    community_id: Option<i64>,
    community_name: Option<String>,
    county_id: Option<i64>,
    created_at: DateTime<Utc>,
    claimed_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    confirmed_at: Option<DateTime<Utc>>,
    version: i32,
    building_id: i64,
    building_name: Option<String>,
    lon: f64,
    lat: f64,
    resident_id: Option<i64>,
    entered_by: Option<i64>,
    contact_name: Option<String>,
    contact_phone: Option<String>,
    claimant_id: Option<i64>,
    claimant_name: Option<String>,
    end_reason: Option<String>,
    has_photo: bool,
}

const ROW_SELECT: &str = r"
select w.id, w.category, w.body, w.desired_on, w.state, g.id as grid_id, g.code as grid_code, g.name as grid_name,
       c.id as community_id, c.name as community_name, s.county_id, w.created_at, w.claimed_at, w.completed_at,
       w.confirmed_at, w.version, w.building_id, b.name as building_name, ST_X(b.anchor) as lon, ST_Y(b.anchor) as lat,
       w.resident_id, w.entered_by,
       coalesce(w.resident_name, ra.display_name) as contact_name, coalesce(w.resident_phone, ra.phone) as contact_phone,
       w.claimant_id, coalesce(ca.display_name, '志愿者') as claimant_name, w.end_reason,
       exists (select 1 from wish_photo p where p.wish_id = w.id) as has_photo
  from wish w
  join building b on b.id = w.building_id
  left join grid g on g.id = b.grid_id
  left join community c on c.id = g.community_id
  left join subdistrict s on s.id = c.subdistrict_id
  left join account ra on ra.id = w.resident_id
  left join account ca on ca.id = w.claimant_id";

/// How much of a wish a viewer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sight {
    Public,
    /// The claimant after their claim ended (completed, released): the wish is theirs, the contact no longer.
    FormerClaimant,
    Resident,
    HoldsClaim,
    Staff,
}

impl Row {
    fn state(&self) -> WishState {
        WishState::parse(&self.state).unwrap_or(WishState::Published)
    }

    fn facts(&self) -> Facts {
        Facts {
            state: self.state(),
            grid_id: self.grid_id,
            resident_id: self.resident_id,
            claimant_id: self.claimant_id,
        }
    }

    fn sight(&self, viewer: Option<&Principal>) -> Sight {
        let Some(v) = viewer else { return Sight::Public };
        let in_county = v.county_id.is_none() || v.county_id == self.county_id;
        let staff = match v.role {
            Role::Admin | Role::Planner => in_county,
            Role::GridWorker => self.grid_id.is_some_and(|g| v.works_grid(g)),
            _ => false,
        };
        if staff {
            Sight::Staff
        } else if self.claimant_id == Some(v.account_id) && self.state() == WishState::Claimed {
            Sight::HoldsClaim
        } else if self.resident_id == Some(v.account_id) || self.entered_by == Some(v.account_id) {
            Sight::Resident
        } else if self.claimant_id == Some(v.account_id) {
            Sight::FormerClaimant
        } else {
            Sight::Public
        }
    }

    fn finish(self, viewer: Option<&Principal>) -> WishView {
        let sight = self.sight(viewer);
        let facts = self.facts();
        let mine =
            viewer.is_some_and(|v| [self.resident_id, self.entered_by, self.claimant_id].contains(&Some(v.account_id)));
        let building = (sight >= Sight::Resident).then(|| WishBuilding {
            id: self.building_id,
            name: self.building_name.clone(),
            lon: self.lon,
            lat: self.lat,
        });
        let contact = matches!(sight, Sight::HoldsClaim | Sight::Staff)
            .then(|| Contact { name: self.contact_name.clone(), phone: self.contact_phone.clone() });
        let claimant =
            (sight >= Sight::Resident && self.claimant_id.is_some()).then(|| self.claimant_name.clone()).flatten();
        let end_reason = (sight > Sight::Public).then(|| self.end_reason.clone()).flatten();
        let has_photo = (sight > Sight::Public).then_some(self.has_photo);
        WishView {
            id: self.id,
            category: self.category,
            body: self.body,
            desired_on: self.desired_on,
            state: facts.state,
            grid_id: self.grid_id,
            grid_code: self.grid_code,
            grid_name: self.grid_name,
            community_id: self.community_id,
            community_name: self.community_name,
            published_at: self.created_at,
            claimed_at: self.claimed_at,
            completed_at: self.completed_at,
            confirmed_at: self.confirmed_at,
            version: self.version,
            allowed_next: allowed_next(viewer, &facts),
            mine,
            building,
            contact,
            claimant,
            end_reason,
            history: None,
            has_photo,
        }
    }
}

fn check_text(name: &'static str, value: &str, max: usize) -> Result<(), WishError> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(field(name, "invalid_text", format!("1 to {max} characters, not blank, no control characters")));
    }
    Ok(())
}

fn check_phone(value: &str) -> Result<(), WishError> {
    if !(3..=32).contains(&value.chars().count()) || !value.chars().all(|c| c.is_ascii_digit() || " +()-".contains(c)) {
        return Err(field("resident_phone", "invalid_phone", "3 to 32 characters of digits, spaces, + ( ) -"));
    }
    Ok(())
}

/// The body's own rules (no database): category, text, contact fields' shapes.
fn check_create(body: &CreateWish) -> Result<(), WishError> {
    if !CATEGORIES.iter().any(|(id, _, _)| *id == body.category) {
        let known: Vec<&str> = CATEGORIES.iter().map(|c| c.0).collect();
        return Err(field("category", "unknown_category", format!("one of {}", known.join(", "))));
    }
    check_text("body", &body.body, MAX_BODY_CHARS)?;
    if let Some(name) = &body.resident_name {
        check_text("resident_name", name, 64)?;
    }
    if let Some(phone) = &body.resident_phone {
        check_phone(phone)?;
    }
    Ok(())
}

/// 403 unless the account may publish wishes at all: residents, grid workers, admins.
pub fn may_publish(actor: &Principal) -> Result<(), WishError> {
    if matches!(actor.role, Role::Resident | Role::GridWorker | Role::Admin) {
        return Ok(());
    }
    Err(WishError::Forbidden {
        message: "residents publish wishes; grid workers and admins enter them on a resident's behalf".into(),
        reason: Refusal::RoleCannotAct.as_str(),
    })
}

/// 403 unless the account's role takes any step of a wish: residents, volunteers, grid
/// workers, admins (riders, planners, building leaders and station hosts take none).
pub fn takes_part(actor: &Principal) -> Result<(), WishError> {
    if matches!(actor.role, Role::Resident | Role::Volunteer | Role::GridWorker | Role::Admin) {
        return Ok(());
    }
    Err(refused(Refusal::RoleCannotAct))
}

/// Publish a wish (rules in the module documentation); returns it as its publisher sees it.
pub async fn publish(pool: &PgPool, actor: &Principal, body: &CreateWish) -> Result<WishView, WishError> {
    may_publish(actor)?;
    check_create(body)?;
    let today: NaiveDate = sqlx::query_scalar("select gridmap_county_today()").fetch_one(pool).await?;
    if body.desired_on < today || (body.desired_on - today).num_days() > MAX_DAYS_AHEAD {
        return Err(field(
            "desired_on",
            "desired_on_range",
            format!("from today ({today}) to {MAX_DAYS_AHEAD} days ahead"),
        ));
    }
    let (building, resident_id) = if actor.role == Role::Resident {
        if body.resident_name.is_some() || body.resident_phone.is_some() {
            return Err(field(
                "resident_name",
                "own_contact",
                "a resident's own contact comes from their account; leave resident_name and resident_phone out",
            ));
        }
        let home: Option<i64> = sqlx::query_scalar("select building_id from account where id = $1")
            .bind(actor.account_id)
            .fetch_one(pool)
            .await?;
        let Some(home) = home else {
            return Err(WishError::Unprocessable {
                field: "building_id",
                message: "your account has no home building; ask your community worker to set it".into(),
            });
        };
        if body.building_id.is_some_and(|b| b != home) {
            return Err(WishError::Forbidden {
                message: "a resident publishes wishes for their own building".into(),
                reason: Refusal::NotYourWish.as_str(),
            });
        }
        (home, Some(actor.account_id))
    } else {
        let building = body.building_id.ok_or_else(|| {
            field("building_id", "building_required", "name the building of the resident the wish is for")
        })?;
        if body.resident_name.is_none() || body.resident_phone.is_none() {
            return Err(field(
                "resident_name",
                "contact_required",
                "on a resident's behalf, give the resident's name and phone (kept private) so the volunteer can reach them",
            ));
        }
        let found: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
            r"select b.grid_id, s.county_id from building b left join grid g on g.id = b.grid_id
                left join community c on c.id = g.community_id left join subdistrict s on s.id = c.subdistrict_id
               where b.id = $1",
        )
        .bind(building)
        .fetch_optional(pool)
        .await?;
        let Some((grid, county)) = found else {
            return Err(WishError::Unprocessable { field: "building_id", message: format!("no building {building}") });
        };
        let reaches = match actor.role {
            Role::Admin => actor.county_id.is_none() || actor.county_id == county,
            _ => grid.is_some_and(|g| actor.works_grid(g)),
        };
        if !reaches {
            return Err(refused(Refusal::NotYourGrid));
        }
        (building, None)
    };
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        r"insert into wish (building_id, category, body, desired_on, resident_id, resident_name, resident_phone, entered_by)
          values ($1, $2, $3, $4, $5, $6, $7, $8) returning id",
    )
    .bind(building)
    .bind(&body.category)
    .bind(body.body.trim())
    .bind(body.desired_on)
    .bind(resident_id)
    .bind(body.resident_name.as_deref().map(str::trim))
    .bind(body.resident_phone.as_deref())
    .bind(actor.account_id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("insert into wish_event (wish_id, to_state, actor_id, actor) values ($1, 'published', $2, $3)")
        .bind(id)
        .bind(actor.account_id)
        .bind(&actor.name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    get(pool, id, Some(actor)).await
}

async fn row(pool: &PgPool, id: i64) -> Result<Row, WishError> {
    sqlx::query_as(&format!("{ROW_SELECT} where w.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(WishError::NotFound(id))
}

/// One wish as `viewer` may see it (staff also get its history).
pub async fn get(pool: &PgPool, id: i64, viewer: Option<&Principal>) -> Result<WishView, WishError> {
    let row = row(pool, id).await?;
    let staff = row.sight(viewer) == Sight::Staff;
    let mut view = row.finish(viewer);
    if staff {
        view.history = Some(
            sqlx::query_as(
                "select from_state, to_state, actor, reason, at from wish_event where wish_id = $1 order by id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?,
        );
    }
    Ok(view)
}

/// Take a step (rules in the module documentation); returns the wish after it. The checks run
/// in the order a client can act on: the request's own fields, who acts, `If-Match` present,
/// whether the state may go there (409: of two claims the second learns it was taken), the
/// version (412). The write is conditional on the state and version read, so a step that raced
/// with another is refused, never applied over it.
pub async fn transition(
    pool: &PgPool,
    id: i64,
    actor: &Principal,
    if_match: Option<i64>,
    request: &WishTransition,
) -> Result<WishView, WishError> {
    let to = WishState::parse(&request.to).ok_or_else(|| {
        let known: Vec<&str> = WishState::ALL.iter().map(|s| s.as_str()).collect();
        field("to", "unknown_state", format!("one of {}", known.join(", ")))
    })?;
    let reason = request.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = reason
        && r.chars().count() > MAX_REASON_CHARS
    {
        return Err(field("reason", "reason_too_long", format!("at most {MAX_REASON_CHARS} characters")));
    }
    if to.needs_reason() && reason.is_none() {
        return Err(field("reason", "reason_required", format!("{} needs a reason", to.as_str())));
    }
    if reason.is_some() && !to.needs_reason() && to != WishState::Published {
        return Err(field("reason", "reason_not_allowed", "a reason goes with withdrawn, failed and a released claim"));
    }
    let current = row(pool, id).await?;
    // A county-scoped admin acts in their county only; another county's wishes are not theirs to see.
    if actor.role == Role::Admin && actor.county_id.is_some() && actor.county_id != current.county_id {
        return Err(WishError::NotFound(id));
    }
    let facts = current.facts();
    permission(actor, &facts, to).map_err(refused)?;
    let version = if_match.ok_or(WishError::VersionRequired)?;
    check_step(&facts, to)?;
    if version != i64::from(current.version) {
        return Err(WishError::Stale { current: current.version });
    }
    let mut tx = pool.begin().await?;
    let written: Option<i32> = sqlx::query_scalar(
        r"update wish set state = $3, version = version + 1,
                 claimant_id = case when $3 = 'claimed' then $5 when $3 = 'published' then null else claimant_id end,
                 claimed_at = case when $3 = 'claimed' then now() when $3 = 'published' then null else claimed_at end,
                 first_claimed_at = case when $3 = 'claimed' then coalesce(first_claimed_at, now()) else first_claimed_at end,
                 completed_at = case when $3 = 'completed' then now() else completed_at end,
                 confirmed_at = case when $3 = 'confirmed' then now() else confirmed_at end,
                 ended_at = case when $3 in ('withdrawn', 'failed') then now() else ended_at end,
                 end_reason = case when $3 in ('withdrawn', 'failed') then $6 else end_reason end
           where id = $1 and state = $2 and version = $4
       returning version",
    )
    .bind(id)
    .bind(facts.state.as_str())
    .bind(to.as_str())
    .bind(version)
    .bind(actor.account_id)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    if written.is_none() {
        // Another step won the race since the read: say what it was, as if it had come first.
        drop(tx);
        let now = row(pool, id).await?;
        let facts = now.facts();
        check_step(&facts, to)?;
        return Err(WishError::Stale { current: now.version });
    }
    sqlx::query(
        "insert into wish_event (wish_id, from_state, to_state, actor_id, actor, reason) values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(facts.state.as_str())
    .bind(to.as_str())
    .bind(actor.account_id)
    .bind(&actor.name)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    // A confirmed wish earns its claimant the `wish_completed` rule of their earning group
    // (docs/points.md: volunteers and party members), in the same transaction, once per wish.
    if to == WishState::Confirmed
        && let Some(claimant) = facts.claimant_id
    {
        crate::points::award(&mut tx, claimant, "wish_completed", crate::points::SourceRef { kind: "wish", id })
            .await?;
    }
    tx.commit().await?;
    get(pool, id, Some(actor)).await
}

/// The stored photo of a wish (metadata stripped).
pub struct WishPhoto {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// Attach (or replace) a wish's photo — rules in the module documentation. `photo` is already
/// checked and stripped (`reports::photos::check_and_strip`). Returns the wish.
pub async fn set_photo(
    pool: &PgPool,
    id: i64,
    actor: &Principal,
    photo: &crate::reports::intake::Photo,
) -> Result<WishView, WishError> {
    may_attach_photo(pool, id, actor).await?;
    sqlx::query(
        r"insert into wish_photo (wish_id, media_type, bytes) values ($1, $2, $3)
          on conflict (wish_id) do update set media_type = excluded.media_type, bytes = excluded.bytes, created_at = now()",
    )
    .bind(id)
    .bind(photo.media_type)
    .bind(&photo.bytes)
    .execute(pool)
    .await?;
    get(pool, id, Some(actor)).await
}

/// 404, 403 or 409 unless `actor` may attach a photo to wish `id` now (checked before the body
/// is read, so a refusal costs no upload).
pub async fn may_attach_photo(pool: &PgPool, id: i64, actor: &Principal) -> Result<(), WishError> {
    let current = row(pool, id).await?;
    let sight = current.sight(Some(actor));
    let own = current.resident_id == Some(actor.account_id) || current.entered_by == Some(actor.account_id);
    let staff = sight == Sight::Staff && actor.role != Role::Planner;
    if !(own || staff) {
        return Err(refused(if actor.role == Role::GridWorker { Refusal::NotYourGrid } else { Refusal::NotYourWish }));
    }
    if !matches!(current.state(), WishState::Published | WishState::Claimed) {
        return Err(WishError::Conflict {
            reason: "wish_closed",
            message: format!("a {} wish takes no new photo", current.state().as_str()),
        });
    }
    Ok(())
}

/// A wish's photo, for the resident, the claimant and staff (module documentation).
pub async fn photo(pool: &PgPool, id: i64, viewer: &Principal) -> Result<WishPhoto, WishError> {
    let current = row(pool, id).await?;
    if current.sight(Some(viewer)) == Sight::Public {
        return Err(refused(if viewer.role == Role::GridWorker { Refusal::NotYourGrid } else { Refusal::NotYourWish }));
    }
    let found: Option<(String, Vec<u8>)> =
        sqlx::query_as("select media_type, bytes from wish_photo where wish_id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let (media_type, bytes) = found.ok_or(WishError::NotFound(id))?;
    Ok(WishPhoto { media_type, bytes })
}

/// 409 unless the state may go to `to`; a claim on a wish someone else holds is `already_claimed`.
fn check_step(facts: &Facts, to: WishState) -> Result<(), WishError> {
    if facts.state.next().contains(&to) {
        return Ok(());
    }
    if to == WishState::Claimed && facts.state != WishState::Published {
        return Err(WishError::Conflict {
            reason: "already_claimed",
            message: format!("this wish was claimed first by someone else (it is {} now)", facts.state.as_str()),
        });
    }
    let allowed: Vec<&str> = facts.state.next().iter().map(|s| s.as_str()).collect();
    Err(WishError::Conflict {
        reason: "transition_not_allowed",
        message: format!(
            "a wish in state {} cannot go to {} (allowed: {})",
            facts.state.as_str(),
            to.as_str(),
            if allowed.is_empty() { "none".into() } else { allowed.join(", ") }
        ),
    })
}

/// Filters of `GET /api/wishes`.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub grid: Option<i64>,
    pub community: Option<i64>,
    pub county: Option<i64>,
    /// States to list; empty: every state.
    pub states: Vec<WishState>,
    pub limit: i64,
}

/// The board: wishes by area and state, soonest desired date first, as `viewer` may see them.
pub async fn list(pool: &PgPool, filter: &ListFilter, viewer: Option<&Principal>) -> Result<Vec<WishView>, WishError> {
    let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        r"{ROW_SELECT}
           where ($1::bigint is null or g.id = $1) and ($2::bigint is null or c.id = $2)
             and ($3::bigint is null or s.county_id = $3) and (cardinality($4::text[]) = 0 or w.state = any($4))
           order by w.desired_on, w.id
           limit $5"
    ))
    .bind(filter.grid)
    .bind(filter.community)
    .bind(filter.county)
    .bind(&states)
    .bind(filter.limit.clamp(1, MAX_LIST))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| r.finish(viewer)).collect())
}

/// The viewer's own wishes: published by or for them, entered by them, or claimed by them;
/// newest first.
pub async fn mine(pool: &PgPool, viewer: &Principal) -> Result<Vec<WishView>, WishError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        r"{ROW_SELECT}
           where w.resident_id = $1 or w.entered_by = $1 or w.claimant_id = $1
           order by w.created_at desc, w.id desc
           limit $2"
    ))
    .bind(viewer.account_id)
    .bind(MAX_LIST)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| r.finish(Some(viewer))).collect())
}

/// The metrics of one area (or of all wishes), over the wishes published in a period.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WishStats {
    /// The grid's, community's or county's id (none for a total).
    pub id: Option<i64>,
    pub code: Option<String>,
    pub name: Option<String>,
    /// Wishes published (every one, withdrawn included).
    pub published: i64,
    /// Of those, ever claimed.
    pub claimed: i64,
    /// Completed or confirmed.
    pub completed: i64,
    pub confirmed: i64,
    pub withdrawn: i64,
    pub failed: i64,
    /// Waiting for a claimant now.
    pub open: i64,
    /// completed / (published − withdrawn): a withdrawn wish needed no doing; null without any.
    pub completion_rate: Option<f64>,
    /// Median hours from publishing to the first claim, over the claimed ones.
    pub median_hours_to_claim: Option<f64>,
}

/// Per-area metrics (`GET /api/wishes/stats`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatsReport {
    pub total: WishStats,
    pub communities: Vec<WishStats>,
    pub grids: Vec<WishStats>,
}

/// The area and period metrics are taken over.
#[derive(Debug, Default, Clone, Copy)]
pub struct Area {
    pub grid: Option<i64>,
    pub community: Option<i64>,
    pub subdistrict: Option<i64>,
    pub county: Option<i64>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

const STATS_BASE: &str = r"
with w as (
    select w.*, g.id as grid_id, g.community_id, c.subdistrict_id
      from wish w join building b on b.id = w.building_id
      left join grid g on g.id = b.grid_id left join community c on c.id = g.community_id
      left join subdistrict s on s.id = c.subdistrict_id
     where ($1::bigint is null or g.id = $1) and ($2::bigint is null or c.id = $2)
       and ($3::bigint is null or c.subdistrict_id = $3) and ($4::bigint is null or s.county_id = $4)
       and ($5::timestamptz is null or w.created_at >= $5) and ($6::timestamptz is null or w.created_at < $6))";

const STATS_COUNTS: &str = r"count(*) as published,
       count(*) filter (where w.first_claimed_at is not null) as claimed,
       count(*) filter (where w.state in ('completed', 'confirmed')) as completed,
       count(*) filter (where w.state = 'confirmed') as confirmed,
       count(*) filter (where w.state = 'withdrawn') as withdrawn,
       count(*) filter (where w.state = 'failed') as failed,
       count(*) filter (where w.state = 'published') as open,
       (count(*) filter (where w.state in ('completed', 'confirmed')))::float8
           / nullif(count(*) filter (where w.state <> 'withdrawn'), 0) as completion_rate,
       (percentile_cont(0.5) within group (order by extract(epoch from w.first_claimed_at - w.created_at) / 3600.0)
           filter (where w.first_claimed_at is not null))::float8 as median_hours_to_claim";

/// The metrics of the whole area.
pub async fn stats(pool: &PgPool, area: &Area) -> Result<WishStats, sqlx::Error> {
    sqlx::query_as(&format!("{STATS_BASE} select null::int8 as id, null as code, null as name, {STATS_COUNTS} from w"))
        .bind(area.grid)
        .bind(area.community)
        .bind(area.subdistrict)
        .bind(area.county)
        .bind(area.from)
        .bind(area.to)
        .fetch_one(pool)
        .await
}

/// The metrics in all, per community and per grid (grids and communities with wishes).
pub async fn stats_report(pool: &PgPool, area: &Area) -> Result<StatsReport, sqlx::Error> {
    let total = stats(pool, area).await?;
    let communities = stats_by(
        pool,
        area,
        &format!(
            "{STATS_BASE} select c.id, c.code, c.name, {STATS_COUNTS} from w join community c on c.id = w.community_id
              group by c.id order by c.id"
        ),
    )
    .await?;
    let grids = stats_by(
        pool,
        area,
        &format!(
            "{STATS_BASE} select g.id, g.code, g.name, {STATS_COUNTS} from w join grid g on g.id = w.grid_id
              group by g.id order by g.id"
        ),
    )
    .await?;
    Ok(StatsReport { total, communities, grids })
}

async fn stats_by(pool: &PgPool, area: &Area, sql: &str) -> Result<Vec<WishStats>, sqlx::Error> {
    sqlx::query_as(sql)
        .bind(area.grid)
        .bind(area.community)
        .bind(area.subdistrict)
        .bind(area.county)
        .bind(area.from)
        .bind(area.to)
        .fetch_all(pool)
        .await
}

/// Open wishes per grid at the grid's label point (a point inside it), for the map: a GeoJSON
/// FeatureCollection with `grid_id`, `code`, `name`, `open`. Counts only: the map never shows
/// which building a wish is for.
pub async fn open_counts(pool: &PgPool, community: Option<i64>) -> Result<serde_json::Value, sqlx::Error> {
    sqlx::query_scalar(
        r"select json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
                  'type', 'Feature', 'id', g.id,
                  'geometry', ST_AsGeoJSON(ST_PointOnSurface(g.geom), 6)::json,
                  'properties', json_build_object('grid_id', g.id, 'code', g.code, 'name', g.name, 'open', n.open))
                  order by g.id), '[]'::json))
            from (select b.grid_id, count(*) as open from wish w join building b on b.id = w.building_id
                   where w.state = 'published' group by b.grid_id) n
            join grid g on g.id = n.grid_id
           where $1::bigint is null or g.community_id = $1",
    )
    .bind(community)
    .fetch_one(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(id: i64, role: Role, grids: &[i64]) -> Principal {
        Principal {
            account_id: id,
            name: format!("p{id}"),
            role,
            part_time_grid_worker: false,
            grid_ids: grids.to_vec(),
            county_id: None,
        }
    }

    fn facts(state: WishState) -> Facts {
        Facts { state, grid_id: Some(7), resident_id: Some(1), claimant_id: None }
    }

    #[test]
    fn states_round_trip_through_their_text_and_json() {
        for s in WishState::ALL {
            assert_eq!(WishState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).expect("json"), serde_json::json!(s.as_str()));
        }
        assert_eq!(WishState::parse("done"), None);
    }

    #[test]
    fn volunteers_and_grid_workers_claim_but_not_the_wish_s_own_resident() {
        let open = facts(WishState::Published);
        assert_eq!(allowed_next(Some(&principal(2, Role::Volunteer, &[])), &open), vec![WishState::Claimed]);
        assert!(permission(&principal(3, Role::GridWorker, &[99]), &open, WishState::Claimed).is_ok());
        assert_eq!(
            permission(&principal(1, Role::Resident, &[]), &open, WishState::Claimed),
            Err(Refusal::RoleCannotAct)
        );
        assert_eq!(permission(&principal(4, Role::Rider, &[]), &open, WishState::Claimed), Err(Refusal::RoleCannotAct));
        assert_eq!(
            allowed_next(Some(&principal(1, Role::Resident, &[])), &open),
            vec![WishState::Withdrawn],
            "the resident withdraws"
        );
        assert!(allowed_next(None, &open).is_empty(), "an anonymous viewer takes no step");
    }

    #[test]
    fn only_the_claimant_completes_and_never_confirms_their_own_work() {
        let claimed = Facts { claimant_id: Some(2), ..facts(WishState::Claimed) };
        let volunteer = principal(2, Role::Volunteer, &[]);
        let other = principal(5, Role::Volunteer, &[]);
        assert_eq!(
            allowed_next(Some(&volunteer), &claimed),
            vec![WishState::Completed, WishState::Published, WishState::Failed]
        );
        assert!(allowed_next(Some(&other), &claimed).is_empty());
        let done = Facts { claimant_id: Some(2), ..facts(WishState::Completed) };
        assert!(allowed_next(Some(&volunteer), &done).is_empty());
        assert_eq!(allowed_next(Some(&principal(1, Role::Resident, &[])), &done), vec![WishState::Confirmed]);
        assert_eq!(allowed_next(Some(&principal(6, Role::GridWorker, &[7])), &done), vec![WishState::Confirmed]);
        assert_eq!(
            permission(&principal(8, Role::GridWorker, &[8]), &done, WishState::Confirmed),
            Err(Refusal::NotYourGrid)
        );
        let worker_claimant = principal(2, Role::GridWorker, &[7]);
        assert_eq!(permission(&worker_claimant, &done, WishState::Confirmed), Err(Refusal::OwnWish));
    }

    #[test]
    fn withdrawn_and_failed_need_a_reason_and_end_the_wish() {
        for s in [WishState::Withdrawn, WishState::Failed] {
            assert!(s.needs_reason());
            assert!(s.next().is_empty());
        }
        assert!(WishState::Confirmed.next().is_empty());
        assert!(!WishState::Claimed.needs_reason());
    }
}
