//! The OpenAPI 3.1 document (utoipa), served at `/api-docs/openapi.json` with Swagger UI at
//! `/swagger-ui/`. Two security schemes, either of which unlocks the protected routes: `oauth2`
//! (password flow against `/api/v1/auth/token`: Swagger's Authorize dialog takes a username and
//! password) and `bearer` (paste the bare token; Swagger adds `Bearer `).

use utoipa::openapi::security::{
    Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use crate::auth::LinkedFile;
use crate::auth::{ChangePassword, TokenRequest, TokenResponse};
use crate::error::{ErrorBody, ErrorCode};
use crate::health::Status;
use crate::models::ModelView;
use crate::users::{CreateUser, ResetPassword, Role, User, UserList};
use crate::videos::annotated::AnnotationView;
use crate::videos::events::{ListFrame, StateEvent, StateFrame};
use crate::videos::frames::{FramesPage, Timeline};
use crate::videos::media::FileLink;
use crate::videos::upload::UploadForm;
use crate::videos::{Links, Options, Progress, ResultFormat, VideoList, VideoStatus, VideoView};

pub const SPEC_PATH: &str = "/api-docs/openapi.json";
pub const SWAGGER_UI_PATH: &str = "/swagger-ui/";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Argus API",
        description = "Finds objects in videos. Every error is JSON `{\"code\", \"message\"}`; \
                       `code` is one of the `ErrorCode` values and stable.\n\n\
                       Log in with **Authorize**: username and password under `oauth2`, or a \
                       token from `POST /api/v1/auth/token` under `bearer` (without `Bearer `).\n\n\
                       Videos: upload one (`POST /api/v1/videos`, multipart with the file in \
                       `file`, or the raw body), follow its progress (`GET /api/v1/videos/{id}` \
                       or the event stream), then fetch its result as JSON, COCO or CSV. \
                       Another user's video answers 404, exactly as a missing one."
    ),
    paths(
        crate::auth::issue_token,
        crate::auth::me,
        crate::auth::change_password,
        crate::users::create_user,
        crate::users::get_users,
        crate::users::delete_user,
        crate::users::reset_password,
        crate::videos::upload::upload_video,
        crate::videos::list_videos,
        crate::videos::get_video,
        crate::videos::get_result,
        crate::videos::events::video_events,
        crate::videos::events::all_video_events,
        crate::videos::frames::get_frames,
        crate::videos::frames::get_timeline,
        crate::videos::media::create_file_link,
        crate::videos::media::get_file,
        crate::videos::media::get_annotated_file,
        crate::videos::annotated::request_annotated,
        crate::videos::annotated::get_annotated,
        crate::videos::delete_video,
        crate::models::list_models,
        crate::collections::upload::create_collection,
        crate::collections::list_collections,
        crate::collections::get_collection,
        crate::collections::get_collection_result,
        crate::videos::events::collection_events,
        crate::collections::delete_collection,
        crate::webhooks::routes::video_webhooks,
        crate::webhooks::routes::collection_webhooks,
        crate::webhooks::routes::get_webhook,
        crate::webhooks::routes::put_webhook,
        crate::webhooks::routes::rotate_secret,
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::metrics,
    ),
    components(schemas(
        ErrorBody, ErrorCode, TokenRequest, TokenResponse, ChangePassword, User, UserList, CreateUser,
        ResetPassword, Role, Status,
        UploadForm, VideoView, VideoList, VideoStatus, Options, Progress, Links, ResultFormat,
        StateEvent, StateFrame, ListFrame, FramesPage, Timeline, FileLink, ModelView, AnnotationView, LinkedFile,
        crate::webhooks::store::DeliveryView, crate::webhooks::store::AttemptView,
        crate::webhooks::routes::WebhookSettings, crate::webhooks::routes::SetWebhook,
        crate::collections::CollectionView, crate::collections::CollectionList,
        crate::collections::CollectionProgress, crate::collections::CollectionLinks,
        crate::collections::upload::CollectionForm, crate::collections::CollectionFormat
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Tokens (OAuth2 password flow) and the caller"),
        (name = "users", description = "User management (admins only; no open registration)"),
        (name = "videos", description = "Upload videos, follow their processing, fetch what was found"),
        (name = "models", description = "The models uploads may name, with their labels"),
        (name = "collections", description = "Photo collections as jobs: many photos (or archives of them) detected as one run, with a summary"),
        (name = "webhooks", description = "Signed notifications when a video ends: your default URL and secret, each video's delivery log"),
        (name = "operations", description = "Liveness, readiness, Prometheus metrics"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::Password(Password::new(
                    "/api/v1/auth/token",
                    Scopes::new(),
                ))],
                "Username and password (OAuth2 password flow)",
            )),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /api/v1/auth/token (without \"Bearer \")",
                    ))
                    .build(),
            ),
        );
    }
}
