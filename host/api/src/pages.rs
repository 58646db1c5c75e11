//! The agent desktop and the supervisor wallboard: static pages embedded in
//! the binary (no CDN, no build step), talking to the CTI API and the event
//! stream. Also the OpenAPI document of the REST API.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const DESKTOP_HTML: &str = include_str!("pages/desktop.html");
const WALLBOARD_HTML: &str = include_str!("pages/wallboard.html");
const COMMON_JS: &str = include_str!("pages/common.js");
const DESKTOP_JS: &str = include_str!("pages/desktop.js");
const WALLBOARD_JS: &str = include_str!("pages/wallboard.js");
const STYLE_CSS: &str = include_str!("pages/style.css");
/// Kept in the repository as `docs/openapi.json`; a test checks they match.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Only our own scripts and our own origin; never framed by another site.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub fn router() -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/desktop") }))
        .route(
            "/desktop",
            get(|| async { asset("text/html; charset=utf-8", DESKTOP_HTML) }),
        )
        .route(
            "/wallboard",
            get(|| async { asset("text/html; charset=utf-8", WALLBOARD_HTML) }),
        )
        .route(
            "/assets/common.js",
            get(|| async { asset("text/javascript; charset=utf-8", COMMON_JS) }),
        )
        .route(
            "/assets/desktop.js",
            get(|| async { asset("text/javascript; charset=utf-8", DESKTOP_JS) }),
        )
        .route(
            "/assets/wallboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", WALLBOARD_JS) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            "/api/openapi.json",
            get(|| async { asset("application/json", OPENAPI_JSON) }),
        )
}

#[cfg(test)]
mod tests {
    /// Every route the API's routers declare, as (path, method) pairs, read
    /// from their source: a route added without its OpenAPI entry fails here.
    fn declared_routes() -> Vec<(String, String)> {
        let mut out = Vec::new();
        for src in [include_str!("admin.rs"), include_str!("cti.rs")] {
            for part in src.split(".route(\"").skip(1) {
                let Some((path, rest)) = part.split_once('"') else {
                    continue;
                };
                let call = rest.split("))\n").next().unwrap_or("");
                for method in ["get", "post", "put", "delete", "patch"] {
                    if call.contains(&format!(" {method}("))
                        || call.contains(&format!(".{method}("))
                    {
                        out.push((path.to_owned(), method.to_owned()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_openapi_document_describes_every_route_and_the_extractors_answers() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI_JSON).unwrap();
        let routes = declared_routes();
        assert!(routes.len() >= 29, "{routes:?}");
        let missing: Vec<_> = routes
            .iter()
            .filter(|(p, m)| doc["paths"][p][m].is_null())
            .collect();
        assert!(missing.is_empty(), "not in docs/openapi.json: {missing:?}");
        for (p, m) in &routes {
            let op = &doc["paths"][p][m];
            let has = |code: &str| !op["responses"][code].is_null();
            if !op["requestBody"].is_null() {
                for code in ["400", "415", "422"] {
                    assert!(has(code), "{m} {p} lacks {code}");
                }
            }
            if *p != "/api/openapi.json" && *p != "/api/events" && *p != "/api/login" {
                assert!(has("401"), "{m} {p} lacks 401");
            }
        }
    }
}
