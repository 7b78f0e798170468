//! The one error type at the HTTP edge. Every error response is JSON:
//! `{"code": "...", "message": "...", "details": ...}` with a stable machine-readable `code`.
//! 5xx bodies say only "internal error"; the cause goes to the log.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    InvalidField { field: String, message: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PreconditionRequired(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 413 for one part of the body (a photo): the client learns which.
    #[error("{message}")]
    FieldTooLarge { field: String, message: String },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Unprocessable { message: String, details: Value },
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    /// Another error with a finer, stable machine reason (the body's `reason`), e.g. why the
    /// workflow refused a step (`four_eyes`): `code` stays the error's class.
    #[error("{error}")]
    WithReason { error: Box<ApiError>, reason: &'static str },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField { field: field.into(), message: message.into() }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    /// This error with a finer machine reason in its body.
    #[must_use]
    pub fn with_reason(self, reason: &'static str) -> Self {
        Self::WithReason { error: Box::new(self), reason }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::WithReason { error, .. } => error.status_and_code(),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            Self::PreconditionRequired(_) => (StatusCode::PRECONDITION_REQUIRED, "precondition_required"),
            Self::PayloadTooLarge(_) | Self::FieldTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Database(err) if is_timeout_or_unavailable(err) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Database(_) | Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// Statement timeouts, cancelled queries and an exhausted or unreachable pool are the
/// database being busy or away: the client may retry, so they are 503, not 500.
fn is_timeout_or_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            // query_canceled, admin_shutdown, crash_shutdown, cannot_connect_now, and
            // too_many_connections (a new pool connection refused at max_connections)
            Some("57014" | "57P01" | "57P02" | "57P03" | "53300")
        ),
        _ => false,
    }
}

/// Every error response: a stable machine-readable `code`, a human `message`,
/// the offending `field` for an invalid field, and `details` for 422.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// e.g. `invalid_field`, `conflict`, `precondition_failed`, `unprocessable`.
    pub code: String,
    pub message: String,
    /// With `invalid_field` (400): the field or parameter at fault, e.g. `location.lon`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A finer, stable machine reason within `code`, for the client to translate — for a
    /// workflow refusal one of `role_cannot_handle`, `not_your_grid`, `four_eyes` (403),
    /// `version_required` (428), `stale_version` (412), `transition_not_allowed` (409),
    /// `unknown_status`, `cancel_reason`, `duplicate_of`, `note_too_long` (400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With `unprocessable` (422): what the check found, e.g. `{"parts": 1}` for a line that
    /// does not split a grid, the overlapping grids, or the database rule refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// The body: `code`, `message`, and `field`, `details` or `reason` where they apply.
    fn body(&self, status: StatusCode, code: &'static str) -> ErrorBody {
        let mut body =
            ErrorBody { code: code.to_string(), message: String::new(), field: None, reason: None, details: None };
        match self {
            Self::WithReason { error, reason } => {
                body = error.body(status, code);
                body.reason = Some((*reason).to_string());
            }
            Self::Database(_) | Self::Internal(_) if status.is_server_error() => {
                tracing::error!(error = ?self, "request failed");
                body.message = if status == StatusCode::SERVICE_UNAVAILABLE {
                    "the database is busy or unavailable; retry shortly".into()
                } else {
                    "internal error".into()
                };
            }
            Self::InvalidField { field, message } | Self::FieldTooLarge { field, message } => {
                body.message = format!("{field}: {message}");
                body.field = Some(field.clone());
            }
            Self::Unprocessable { message, details } => {
                body.message.clone_from(message);
                body.details = Some(details.clone());
            }
            other => body.message = other.to_string(),
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A statement the request made fail is the client's fault: constraints.rs says whose.
        if let Self::Database(err) = &self
            && let Some(fault) = crate::constraints::client_fault(err)
        {
            return Self::from(fault).into_response();
        }
        let (status, code) = self.status_and_code();
        let body = self.body(status, code);
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected a body with content-type application/json".into())
            }
            JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge("request body too large".into())
            }
            other => Self::BadRequest(format!("invalid JSON body: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    /// serde names the parameter it could not read (`from: input contains invalid characters`,
    /// ``unknown field `district`, expected …``): the error then carries it as `field`, like
    /// every other bad input.
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        let detail = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
        // `field: why` (the response prefixes the field itself, so only `why` is kept).
        let named = detail.split_once(": ").filter(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        });
        let unknown = detail
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| (name, detail));
        match named.or(unknown) {
            Some((field, why)) => {
                Self::InvalidField { field: field.to_string(), message: format!("invalid query parameter: {why}") }
            }
            None => Self::BadRequest(format!("invalid query string: {text}")),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<crate::constraints::Fault> for ApiError {
    fn from(fault: crate::constraints::Fault) -> Self {
        use crate::constraints::FaultKind;
        match (fault.kind, fault.field) {
            (FaultKind::Conflict, Some(field)) => Self::Conflict(format!("{field}: {}", fault.message)),
            (FaultKind::Conflict, None) => Self::Conflict(fault.message),
            (FaultKind::Unprocessable, field) => Self::Unprocessable {
                message: field.map_or_else(|| fault.message.clone(), |f| format!("{f}: {}", fault.message)),
                details: json!({ "field": field }),
            },
            (FaultKind::Invalid, Some(field)) => Self::field(field, fault.message),
            (FaultKind::Invalid, None) => Self::BadRequest(fault.message),
        }
    }
}

impl From<crate::leaders::LeaderError> for ApiError {
    fn from(err: crate::leaders::LeaderError) -> Self {
        use crate::leaders::LeaderError;
        match err {
            LeaderError::NotFound(what) => Self::NotFound(what),
            LeaderError::Invalid { field, message } => Self::field(field, message),
            LeaderError::Conflict(message) => Self::Conflict(message),
            stale @ LeaderError::Stale { .. } => Self::PreconditionFailed(stale.to_string()),
            LeaderError::Database(e) => e.into(),
        }
    }
}

/// Map a violated, named database constraint to a client error; anything else stays a 500.
/// Constraint names are stable because the migrations name every constraint.
pub fn on_constraint(err: sqlx::Error, map: impl FnOnce(&str) -> Option<ApiError>) -> ApiError {
    if let Some(db) = err.as_database_error()
        && let Some(constraint) = db.constraint()
        && let Some(mapped) = map(constraint)
    {
        return mapped;
    }
    ApiError::Database(err)
}

pub type ApiResult<T> = Result<T, ApiError>;
