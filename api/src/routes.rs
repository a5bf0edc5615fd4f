//! The app: every route, the extractor configs that make actix's errors JSON, the middleware,
//! Swagger UI. One function, [`app`], so that `argus-api`, `argus serve` and the tests serve
//! exactly the same thing.
//!
//! `/metrics` and `/readyz` are on this app only while `ARGUS_METRICS_BIND` is empty; else they
//! are served on that address (see [`crate::metrics::OperationsEndpoints`]) and this app
//! answers 404 for them, as for any unknown path. `/healthz` stays (it tells nothing).
//!
//! Routes are registered as resources with explicit methods (not with actix's `#[get]` macros,
//! which make a resource per method and answer a wrong method with 404): a known path with a
//! wrong method is 405 with an `Allow` header.

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, Resource};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{self, ApiError, FORM_LIMIT};
use crate::openapi::{ApiDoc, SPEC_PATH, SWAGGER_UI_PATH};
use crate::state::AppState;
use crate::videos::{self, annotated, events, frames, media, upload};
use crate::{auth, collections, console, health, metrics, middleware, models, users, webhooks};

/// A resource whose unlisted methods get 405 with `Allow: <allow>`.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, ApiError>(ApiError::method_not_allowed(allow))
    }))
}

/// The whole application, for an `HttpServer` (or `actix_web::test`).
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let public_operations = state.public_operations;
    App::new()
        .app_data(web::Data::new(state))
        .app_data(error::json_config())
        .app_data(error::path_config())
        .app_data(error::query_config())
        .app_data(error::form_config())
        .wrap(from_fn(middleware::observe))
        .service(
            web::scope("/api/v1")
                .service(
                    resource("/auth/token", "POST")
                        .app_data(web::PayloadConfig::new(FORM_LIMIT))
                        .route(web::post().to(auth::issue_token)),
                )
                .service(resource("/auth/me", "GET").route(web::get().to(auth::me)))
                .service(
                    resource("/auth/password", "PUT").route(web::put().to(auth::change_password)),
                )
                .service(
                    resource("/users", "GET, POST")
                        .route(web::get().to(users::get_users))
                        .route(web::post().to(users::create_user)),
                )
                .service(
                    resource("/users/{name}", "DELETE").route(web::delete().to(users::delete_user)),
                )
                .service(
                    resource("/users/{name}/password", "PUT")
                        .route(web::put().to(users::reset_password)),
                )
                .service(
                    resource("/videos", "GET, POST")
                        .route(web::get().to(videos::list_videos))
                        .route(web::post().to(upload::upload_video)),
                )
                // Before `/videos/{id}`, which would take `events` for an id.
                .service(
                    resource("/videos/events", "GET")
                        .route(web::get().to(events::all_video_events)),
                )
                .service(resource("/models", "GET").route(web::get().to(models::list_models)))
                .service(
                    resource("/collections", "GET, POST")
                        .route(web::get().to(collections::list_collections))
                        .route(web::post().to(collections::upload::create_collection)),
                )
                .service(
                    resource("/collections/{id}", "GET, DELETE")
                        .route(web::get().to(collections::get_collection))
                        .route(web::delete().to(collections::delete_collection)),
                )
                .service(
                    resource("/collections/{id}/result", "GET")
                        .route(web::get().to(collections::get_collection_result)),
                )
                .service(
                    resource("/collections/{id}/events", "GET")
                        .route(web::get().to(events::collection_events)),
                )
                .service(
                    resource("/collections/{id}/webhooks", "GET")
                        .route(web::get().to(webhooks::routes::collection_webhooks)),
                )
                .service(
                    resource("/users/me/webhook", "GET, PUT")
                        .route(web::get().to(webhooks::routes::get_webhook))
                        .route(web::put().to(webhooks::routes::put_webhook)),
                )
                .service(
                    resource("/users/me/webhook/secret", "POST")
                        .route(web::post().to(webhooks::routes::rotate_secret)),
                )
                .service(
                    resource("/videos/{id}/webhooks", "GET")
                        .route(web::get().to(webhooks::routes::video_webhooks)),
                )
                .service(
                    resource("/videos/{id}", "GET, DELETE")
                        .route(web::get().to(videos::get_video))
                        .route(web::delete().to(videos::delete_video)),
                )
                .service(
                    resource("/videos/{id}/result", "GET").route(web::get().to(videos::get_result)),
                )
                .service(
                    resource("/videos/{id}/events", "GET")
                        .route(web::get().to(events::video_events)),
                )
                .service(
                    resource("/videos/{id}/frames", "GET").route(web::get().to(frames::get_frames)),
                )
                .service(
                    resource("/videos/{id}/timeline", "GET")
                        .route(web::get().to(frames::get_timeline)),
                )
                .service(
                    resource("/videos/{id}/file-url", "POST")
                        .route(web::post().to(media::create_file_link)),
                )
                .service(
                    resource("/videos/{id}/annotated", "GET, POST")
                        .route(web::get().to(annotated::get_annotated))
                        .route(web::post().to(annotated::request_annotated)),
                )
                .service(
                    resource("/videos/{id}/annotated/file", "GET, HEAD")
                        .route(web::get().to(media::get_annotated_file))
                        .route(web::head().to(media::get_annotated_file)),
                )
                .service(
                    resource("/videos/{id}/file", "GET, HEAD")
                        .route(web::get().to(media::get_file))
                        .route(web::head().to(media::get_file)),
                ),
        )
        .service(resource("/healthz", "GET").route(web::get().to(health::healthz)))
        .configure(|config| {
            if public_operations {
                config
                    .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
                    .service(resource("/metrics", "GET").route(web::get().to(metrics::metrics)));
            }
        })
        .service(SwaggerUi::new("/swagger-ui/{_:.*}").url(SPEC_PATH, ApiDoc::openapi()))
        // Swagger UI's relative asset paths need the trailing slash.
        .service(
            resource("/swagger-ui", "GET").route(web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header((header::LOCATION, SWAGGER_UI_PATH))
                    .finish()
            })),
        )
        // The web console's pages and assets; anything else is the JSON 404.
        .default_service(web::to(console::serve))
}
