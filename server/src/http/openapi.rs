//! `GET /api/openapi.json` (utoipa) and Swagger UI at `/api/docs` (vendored: no CDN).
//!
//! Each operation is documented on its handler, next to the code whose statuses and bodies it
//! describes, and registered with it by its module's router (`routes.rs`); this file adds what
//! the whole document shares: its info, the bearer scheme, the error body and the statuses the
//! shared layers give.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;
use super::error::ErrorBody;

/// What the document says beside its operations: the title, the bearer scheme and the shared
/// error body. The operations come from the handler modules' routers (`routes.rs`).
#[derive(OpenApi)]
#[openapi(
    info(title = "gridmap API", description = "Grid governance map service for Yiyuan county: mobile-probe reports, workflow, points."),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The statuses that the shared layers give, on every operation where they can occur, so the
/// document says what the server does (a schema fuzzer, bench/schemathesis.sh, checks every
/// status it meets against it): 400 for a parameter or body that does not parse
/// (`extract.rs`), 413/415 for a body too large or of another type (`input.rs`), 401 where a
/// login is asked for, 429 on the rate-limited classes (`limits::classify`, the one rule), and
/// 503 when the database is away or a statement times out (`error.rs`).
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::Operation;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                    )
                    .build(),
            )
        };
        let add = |op: &mut Operation, status: &str, description: &str| {
            op.responses.responses.entry(status.to_string()).or_insert_with(|| error(description));
        };
        for (path, item) in &mut openapi.paths.paths {
            // A concrete path of the template for the limiter's rule (`{id}` → `0`).
            let concrete =
                path.split('/').map(|s| if s.starts_with('{') { "0" } else { s }).collect::<Vec<_>>().join("/");
            let methods = [
                (axum::http::Method::GET, item.get.as_mut()),
                (axum::http::Method::POST, item.post.as_mut()),
                (axum::http::Method::PUT, item.put.as_mut()),
                (axum::http::Method::PATCH, item.patch.as_mut()),
                (axum::http::Method::DELETE, item.delete.as_mut()),
            ];
            for (method, op) in methods {
                let Some(op) = op else { continue };
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some() {
                    add(op, "400", "a parameter or the body does not parse or breaks a rule; `field` names it");
                }
                if op.request_body.is_some() {
                    add(op, "413", "the body is larger than this operation accepts");
                    add(op, "415", "the body is not of a content type this operation accepts");
                }
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add(op, "401", "no login, or one that has expired or was revoked");
                }
                if super::limits::classify(&method, &concrete) != super::limits::Class::Other {
                    add(
                        op,
                        "429",
                        "over the rate limit for this account or address; `Retry-After` says when to try again",
                    );
                }
                add(
                    op,
                    "503",
                    "the database is unavailable or the statement took too long; `Retry-After` says when to try again",
                );
            }
        }
    }
}

/// The served document: `operations` (every module's, plain routes left out) with what
/// [`ApiDoc`] adds, and the shared layers' statuses on every operation.
pub fn document(operations: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::routes::served(operations));
    utoipa::Modify::modify(&CommonResponses, &mut doc);
    doc
}

/// `/api/openapi.json` and Swagger UI over `doc`.
pub fn router(doc: utoipa::openapi::OpenApi) -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", doc))
}
