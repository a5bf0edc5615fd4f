//! The web console: the single-page app in `web/` (TypeScript, Preact, Vite), built by
//! `scripts/setup.sh` (and `Dockerfile.api`) into `web/dist` and embedded in the binary at
//! compile time, so that the API serves it offline with no other file.
//!
//! Served from the app's default service, after every API and operations route:
//! - the page (`index.html`) at the console's routes `/`, `/login`, `/users`, `/videos/<uuid>`,
//!   with a strict Content-Security-Policy (no inline script or style, nothing from another
//!   origin, no framing), `no-cache` so a new build is seen at once;
//! - the assets under `/assets/` with content-hashed names, cached for a year (`immutable`);
//! - the few other files at the root of `dist` (the icon).
//!
//! A binary built without `web/dist` (a bare `cargo build` on a fresh clone) answers the
//! console's routes with a page that says how to build it.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use rust_embed::Embed;

use crate::error::{self, ApiError};

#[derive(Embed)]
#[folder = "../web/dist"]
#[allow_missing = true]
struct Dist;

/// What the page may load and do.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
    font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
    form-action 'self'";

/// Whether `path` is one of the console's own pages (history routes of the app).
fn is_page(path: &str) -> bool {
    match path {
        "/" | "/login" | "/users" => true,
        _ => path
            .strip_prefix("/videos/")
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
    }
}

fn page_headers(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // The console's URLs carry video ids; other sites need not learn them.
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Whether this binary carries the console.
pub fn is_built() -> bool {
    Dist::get("index.html").is_some()
}

/// The console's page or asset at the request's path; anything else is the API's JSON 404.
pub async fn serve(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error::no_route(req).await;
    }
    let path = req.path();
    if is_page(path) {
        let mut response = match Dist::get("index.html") {
            Some(page) => HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .body(bytes(page.data)),
            None => HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
                .content_type("text/html; charset=utf-8")
                .body(NOT_BUILT),
        };
        page_headers(&mut response);
        return Ok(response);
    }
    let name = path.trim_start_matches('/');
    let asset = (name != "index.html" && !name.is_empty())
        .then(|| Dist::get(name))
        .flatten();
    let Some(asset) = asset else {
        return error::no_route(req).await;
    };
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    Ok(HttpResponse::Ok()
        .content_type(actix_files::file_extension_to_mime(ext))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(bytes(asset.data)))
}

fn bytes(data: std::borrow::Cow<'static, [u8]>) -> bytes::Bytes {
    match data {
        std::borrow::Cow::Borrowed(b) => bytes::Bytes::from_static(b),
        std::borrow::Cow::Owned(v) => bytes::Bytes::from(v),
    }
}

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Argus: console not built</title></head><body><main><h1>The web console is not in this \
build</h1><p>This binary was compiled without <code>web/dist</code>. Run \
<code>scripts/setup.sh</code> (it builds the console with npm) and build again; the REST API \
and <a href=\"/swagger-ui/\">Swagger UI</a> work meanwhile.</p></main></body></html>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_owns_its_routes_and_nothing_else() {
        for page in [
            "/",
            "/login",
            "/users",
            "/videos/7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e",
        ] {
            assert!(is_page(page), "{page}");
        }
        for other in [
            "/videos/",
            "/videos/x",
            "/videos/7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e/file",
            "/api/v1/videos",
            "/login/",
            "/index.html",
        ] {
            assert!(!is_page(other), "{other}");
        }
    }
}
