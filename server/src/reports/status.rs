//! A report's status and assignment method as types, the **one** list of allowed transitions,
//! and the one rule of who may make which transition. The server's refusals
//! (`workflow::transition`) and the `allowed_next` it sends with every report (`workflow.rs`'s
//! views) are both computed here, so the page never offers a step the server refuses.
//!
//! ```text
//! submitted → accepted (立案) | cancelled (注销, with a reason)
//! accepted  → dispatched (派遣; the SLA clock starts) | cancelled | parked
//! dispatched → handling | cancelled | parked
//! handling  → feedback | parked
//! feedback  → verified | rework (返工: failed verification)
//! rework    → handling
//! verified  → closed (结案)
//! parked (挂账) → handling | cancelled
//! ```
//!
//! Who may act: an admin always; a grid worker (role `grid_worker`) assigned to the report's grid;
//! nobody else (riders report but do not handle; unassigned reports are admins' only).
//! Verification is four-eyes: `verified` and `rework` may not be done by the account that gave
//! the last feedback (an admin may always).

use serde::{Deserialize, Serialize};

use crate::auth::{Principal, Role};

/// Where a report is in the workflow (`report.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    Submitted,
    Accepted,
    Cancelled,
    Dispatched,
    Handling,
    Feedback,
    Verified,
    Closed,
    Rework,
    Parked,
}

/// A status text that is none of [`ReportStatus::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown report status `{0}`")]
pub struct UnknownStatus(pub String);

impl ReportStatus {
    /// Every status, in workflow order.
    pub const ALL: [Self; 10] = [
        Self::Submitted,
        Self::Accepted,
        Self::Cancelled,
        Self::Dispatched,
        Self::Handling,
        Self::Feedback,
        Self::Verified,
        Self::Closed,
        Self::Rework,
        Self::Parked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Accepted => "accepted",
            Self::Cancelled => "cancelled",
            Self::Dispatched => "dispatched",
            Self::Handling => "handling",
            Self::Feedback => "feedback",
            Self::Verified => "verified",
            Self::Closed => "closed",
            Self::Rework => "rework",
            Self::Parked => "parked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The allowed next statuses — the workflow's one list of transitions.
    pub fn next(self) -> &'static [Self] {
        use ReportStatus::{Accepted, Cancelled, Closed, Dispatched, Feedback, Handling, Parked, Rework, Verified};
        match self {
            Self::Submitted => &[Accepted, Cancelled],
            Self::Accepted => &[Dispatched, Cancelled, Parked],
            Self::Dispatched => &[Handling, Cancelled, Parked],
            Self::Handling => &[Feedback, Parked],
            Self::Feedback => &[Verified, Rework],
            Self::Rework => &[Handling],
            Self::Verified => &[Closed],
            Self::Parked => &[Handling, Cancelled],
            Self::Cancelled | Self::Closed => &[],
        }
    }

    /// Still needs work: everything but `closed` and `cancelled` (duplicates are searched among these).
    pub fn is_open(self) -> bool {
        !matches!(self, Self::Cancelled | Self::Closed)
    }

    /// The steps that check someone else's feedback (four-eyes).
    fn verifies_feedback(self) -> bool {
        matches!(self, Self::Verified | Self::Rework)
    }
}

impl std::fmt::Display for ReportStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for ReportStatus {
    type Error = UnknownStatus;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text).ok_or(UnknownStatus(text))
    }
}

/// How intake chose the report's grid (`report.assignment`; rules in `crate::reports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentMethod {
    /// Rule 1: the grid covering the point.
    Covers,
    /// Rule 2: the nearest grid within 150 m.
    Nearest,
    /// Rule 3: no grid; the subdistrict's queue.
    Unassigned,
}

impl AssignmentMethod {
    pub const ALL: [Self; 3] = [Self::Covers, Self::Nearest, Self::Unassigned];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Covers => "covers",
            Self::Nearest => "nearest",
            Self::Unassigned => "unassigned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// An assignment method text that is none of [`AssignmentMethod::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown assignment method `{0}`")]
pub struct UnknownMethod(pub String);

impl TryFrom<String> for AssignmentMethod {
    type Error = UnknownMethod;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text).ok_or(UnknownMethod(text))
    }
}

/// Why the workflow refuses a step: a stable machine code (the `reason` of the error body),
/// which the web map translates; the error's `message` stays human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// 403: the account's role does not handle reports (riders, residents, planners).
    RoleCannotHandle,
    /// 403: a grid worker, but not of this report's grid (or the report has no grid).
    NotYourGrid,
    /// 403: `verified`/`rework` by the account that gave the feedback.
    FourEyes,
    /// 403: accepting, verifying or closing a report one filed oneself (points for it).
    OwnReport,
    /// 428: no `If-Match`.
    VersionRequired,
    /// 412: `If-Match` is not the report's current version.
    StaleVersion,
    /// 409: the status cannot go there (see `allowed` in the message).
    TransitionNotAllowed,
    /// 400: the request names no known status.
    UnknownStatus,
    /// 400: `cancelled` without a known reason, or a reason/duplicate where none belongs.
    CancelReason,
    /// 400: `duplicate_of` missing, unknown, or the report itself.
    DuplicateOf,
    /// 400: the note is longer than 2,000 characters.
    NoteTooLong,
    /// 400: photos sent with a step other than `feedback` (only feedback carries an "after" photo).
    FeedbackPhoto,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoleCannotHandle => "role_cannot_handle",
            Self::NotYourGrid => "not_your_grid",
            Self::FourEyes => "four_eyes",
            Self::OwnReport => "own_report",
            Self::VersionRequired => "version_required",
            Self::StaleVersion => "stale_version",
            Self::TransitionNotAllowed => "transition_not_allowed",
            Self::UnknownStatus => "unknown_status",
            Self::CancelReason => "cancel_reason",
            Self::DuplicateOf => "duplicate_of",
            Self::NoteTooLong => "note_too_long",
            Self::FeedbackPhoto => "feedback_photo",
        }
    }
}

/// Whom a report waits for, as this viewer sees it (`waiting_for`; the page translates it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitingFor {
    /// The viewer gave the feedback: another worker of the grid or an admin verifies (等待他人核查).
    OtherVerifier,
    /// The report's grid workers handle it (the viewer is not one of them).
    GridWorker,
    /// No grid took the report: an admin dispatches it from the subdistrict's queue.
    Admin,
}

/// What the rule needs to know about a report.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub status: ReportStatus,
    pub grid_id: Option<i64>,
    /// The account that gave the last feedback (only needed in `feedback`).
    pub feedback_by: Option<i64>,
    /// The account that filed the report (none for anonymous and Open311 reports).
    pub reporter_id: Option<i64>,
}

/// May `actor` move a report with these facts to `to`, as far as *who* acts is concerned?
/// (Whether the status may go there at all is [`ReportStatus::next`]; the server checks who
/// first, so that an outsider learns nothing about versions.)
pub fn permission(actor: &Principal, facts: &Facts, to: ReportStatus) -> Result<(), Refusal> {
    match actor.role {
        Role::Admin => {}
        Role::GridWorker if facts.grid_id.is_some_and(|g| actor.works_grid(g)) => {}
        Role::GridWorker => return Err(Refusal::NotYourGrid),
        Role::Resident
        | Role::Rider
        | Role::Planner
        | Role::BuildingLeader
        | Role::StationHost
        | Role::Merchant
        | Role::Volunteer => {
            return Err(Refusal::RoleCannotHandle);
        }
    }
    // Nobody — admins included — accepts, verifies or closes their own report: acceptance
    // credits the reporter's points, and a report must be checked by someone else.
    if facts.reporter_id == Some(actor.account_id)
        && matches!(to, ReportStatus::Accepted | ReportStatus::Verified | ReportStatus::Closed)
    {
        return Err(Refusal::OwnReport);
    }
    if actor.role != Role::Admin && to.verifies_feedback() && facts.feedback_by == Some(actor.account_id) {
        return Err(Refusal::FourEyes);
    }
    Ok(())
}

/// The transitions `actor` may make now: [`ReportStatus::next`] filtered by [`permission`].
pub fn allowed_next(actor: &Principal, facts: &Facts) -> Vec<ReportStatus> {
    facts.status.next().iter().copied().filter(|to| permission(actor, facts, *to).is_ok()).collect()
}

/// Why the next step is not this viewer's to take; `None` when the viewer may act on every next
/// step or there is none (closed, cancelled).
pub fn waiting_for(actor: &Principal, facts: &Facts) -> Option<WaitingFor> {
    let next = facts.status.next();
    let blocked = next.iter().find_map(|to| permission(actor, facts, *to).err())?;
    Some(match blocked {
        Refusal::FourEyes | Refusal::OwnReport => WaitingFor::OtherVerifier,
        _ if facts.grid_id.is_none() => WaitingFor::Admin,
        _ => WaitingFor::GridWorker,
    })
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

    #[test]
    fn statuses_round_trip_through_their_text_and_json() {
        for s in ReportStatus::ALL {
            assert_eq!(ReportStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).expect("json"), serde_json::json!(s.as_str()));
        }
        for m in AssignmentMethod::ALL {
            assert_eq!(AssignmentMethod::parse(m.as_str()), Some(m));
            assert_eq!(serde_json::to_value(m).expect("json"), serde_json::json!(m.as_str()));
        }
        assert_eq!(ReportStatus::parse("done"), None);
    }

    #[test]
    fn only_closed_and_cancelled_are_final_and_not_open() {
        for s in ReportStatus::ALL {
            assert_eq!(s.next().is_empty(), !s.is_open(), "{s}");
        }
    }

    #[test]
    fn the_feedback_giver_waits_for_another_verifier_and_admins_never_wait() {
        let facts = Facts { status: ReportStatus::Feedback, grid_id: Some(7), feedback_by: Some(1), reporter_id: None };
        let giver = principal(1, Role::GridWorker, &[7]);
        let colleague = principal(2, Role::GridWorker, &[7]);
        let admin = principal(1, Role::Admin, &[]);
        assert_eq!(allowed_next(&giver, &facts), Vec::<ReportStatus>::new());
        assert_eq!(waiting_for(&giver, &facts), Some(WaitingFor::OtherVerifier));
        assert_eq!(allowed_next(&colleague, &facts), vec![ReportStatus::Verified, ReportStatus::Rework]);
        assert_eq!(waiting_for(&colleague, &facts), None);
        assert_eq!(allowed_next(&admin, &facts), vec![ReportStatus::Verified, ReportStatus::Rework]);
        let unassigned = Facts { status: ReportStatus::Submitted, grid_id: None, feedback_by: None, reporter_id: None };
        assert_eq!(waiting_for(&colleague, &unassigned), Some(WaitingFor::Admin));
        let rider = principal(3, Role::Rider, &[7]);
        let elsewhere = Facts { grid_id: Some(7), ..unassigned };
        assert_eq!(waiting_for(&rider, &elsewhere), Some(WaitingFor::GridWorker));
        assert_eq!(permission(&rider, &elsewhere, ReportStatus::Accepted), Err(Refusal::RoleCannotHandle));
    }
}
