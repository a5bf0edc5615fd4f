//! The one middleware every request goes through: gives it a request id (`X-Request-Id`, taken
//! from the client when it is a sane token, else a fresh UUID, and echoed in the response), runs
//! it inside a `tracing` span carrying that id, logs one line per request (method, path, route,
//! status, latency: never headers, query strings or bodies, where tokens and passwords travel),
//! counts it in the metrics, and turns any error response that is not JSON yet (actix's own 404,
//! 405, 413, …) into our `{"code", "message"}` body.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use crate::error::{is_json, json_error_body};
use crate::metrics::{Metrics, UNMATCHED_ROUTE};
use crate::state::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A client's request id is kept only when it cannot forge or garble a log line.
fn incoming_request_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let sane = (1..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    sane.then(|| value.to_string())
}

/// Methods outside the standard set share one label, keeping the metric's label set bounded.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = incoming_request_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = method_label(req.method());
    let metrics: Option<Arc<Metrics>> = req
        .app_data::<web::Data<AppState>>()
        .map(|state| Arc::clone(&state.metrics));
    let span = tracing::info_span!("request", id = %request_id, method, path = %req.path());

    // (The request must not be cloned before routing, which needs it unshared.) Handlers',
    // extractors' and default services' errors arrive here as responses; an `Err` could only
    // come from an inner middleware, and there is none: log and count it, and let actix answer.
    let mut res = match next.call(req).instrument(span.clone()).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(err) => {
            let status = err.as_response_error().status_code().as_u16();
            if let Some(metrics) = &metrics {
                metrics.observe(
                    UNMATCHED_ROUTE,
                    method,
                    status,
                    started.elapsed().as_secs_f64(),
                );
            }
            span.in_scope(
                || tracing::error!(status, error = %err, "request failed in a middleware"),
            );
            return Err(err);
        }
    };

    if res.status().as_u16() >= 400 && !is_json(res.headers()) {
        let body = json_error_body(res.status());
        let json = serde_json::to_vec(&body).unwrap_or_default();
        res = res.map_body(|head, _old| {
            head.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            BoxBody::new(json)
        });
    }

    let status = res.status().as_u16();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_string());
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe(&route, method, status, elapsed.as_secs_f64());
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    let latency_ms = format!("{:.3}", elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, route = %route, latency_ms = %latency_ms, "request failed");
        } else {
            tracing::info!(status, route = %route, latency_ms = %latency_ms, "request");
        }
    });
    Ok(res)
}
