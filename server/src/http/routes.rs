//! How a handler module declares its routes, and the list of every route the server answers.
//!
//! Each module's `router()` returns an [`OpenApiRouter`]. A documented route is registered with
//! `.routes(routes!(handler_a, handler_b))` (handlers sharing one path): the method and path come
//! from the handler's `#[utoipa::path]`, so the route and its OpenAPI entry cannot disagree.
//! Routes deliberately outside `/api/openapi.json` (health, metrics, tiles, OGC API – Features
//! and Open311, which have their own documents) are registered with [`plain_routes!`], which
//! records their methods in the router's document under [`PLAIN`]; [`served`] leaves them out
//! of what is served, and [`list`] reads every route, documented or not, from that one document.

use axum::http::Method;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::{OpenApi, extensions::ExtensionsBuilder};
use utoipa_axum::router::OpenApiRouter;

use super::AppState;

/// The extension that marks an operation registered by [`plain_routes!`]: a route the server
/// answers that the served document leaves out.
pub const PLAIN: &str = "x-gridmap-plain";

/// `plain_routes!(router, "/path" => get(handler).post(other), …)`: plain axum routes on an
/// [`OpenApiRouter`], each method recorded (under [`PLAIN`]) as it is registered.
macro_rules! plain_routes {
    ($router:expr, $($path:literal => $($method:ident($handler:expr)).+),+ $(,)?) => {{
        let mut router: utoipa_axum::router::OpenApiRouter<$crate::http::AppState> = $router;
        $(
            router = router.route($path, axum::routing::MethodRouter::new()$(.$method($handler))+);
            $( $crate::http::routes::record_plain(&mut router, $path, stringify!($method)); )+
        )+
        router
    }};
}
pub(crate) use plain_routes;

/// Records `method path` (a plain route) in `router`'s document; see [`plain_routes!`].
pub fn record_plain(router: &mut OpenApiRouter<AppState>, path: &str, method: &str) {
    let method = match method {
        "get" => HttpMethod::Get,
        "post" => HttpMethod::Post,
        "put" => HttpMethod::Put,
        "patch" => HttpMethod::Patch,
        "delete" => HttpMethod::Delete,
        "options" => HttpMethod::Options,
        "head" => HttpMethod::Head,
        other => panic!("plain_routes!: no HTTP method {other}"),
    };
    let marked = OperationBuilder::new().extensions(Some(ExtensionsBuilder::new().add(PLAIN, true).build())).build();
    router
        .get_openapi_mut()
        .paths
        .paths
        .entry(path.to_string())
        .or_default()
        .merge_operations(PathItem::new(method, marked));
}

/// One route of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: String,
    /// In `/api/openapi.json`.
    pub documented: bool,
}

/// Every (method, path template) the router answers, read from its document: the OpenAPI
/// operations and the [`plain_routes!`]. Swagger UI's own routes (`/api/docs…`,
/// `/api/openapi.json`) and the static files (the fallback) are not in it.
pub fn list(doc: &OpenApi) -> Vec<Route> {
    let mut routes = Vec::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
            (Method::OPTIONS, &item.options),
            (Method::HEAD, &item.head),
        ];
        for (method, op) in ops {
            if let Some(op) = op.as_ref() {
                routes.push(Route { method, path: path.clone(), documented: !is_plain(op) });
            }
        }
    }
    routes.sort_by(|a, b| (&a.path, a.method.as_str()).cmp(&(&b.path, b.method.as_str())));
    routes
}

fn is_plain(op: &utoipa::openapi::path::Operation) -> bool {
    op.extensions.as_ref().is_some_and(|e| e.contains_key(PLAIN))
}

/// The document as served: `doc` without the plain routes.
pub fn served(mut doc: OpenApi) -> OpenApi {
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
        ] {
            if op.as_ref().is_some_and(is_plain) {
                *op = None;
            }
        }
    }
    doc.paths.paths.retain(|_, item| {
        [&item.get, &item.post, &item.put, &item.patch, &item.delete, &item.options, &item.head, &item.trace]
            .iter()
            .any(|op| op.is_some())
    });
    doc
}
