//! `POST /api/v1/collections`: a collection as it comes in (photos in `file` parts, archives in
//! `archive` parts or as the body, the options), stored through [`super::intake`], recorded and
//! queued; undone on failure.

use super::*;
/// The multipart form (documentation only: the handler streams the body).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CollectionForm {
    /// A photo (jpeg, png, webp, bmp, tiff, gif); repeat the field for each.
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
    /// An archive of photos (tar, tar.gz or zip); may be repeated, and mixed with `file`.
    #[schema(value_type = Option<String>, format = Binary)]
    archive: Option<Vec<u8>>,
    /// A model the detectors serve; the default when empty.
    #[schema(value_type = Option<String>, example = "")]
    model: Option<String>,
    /// Minimum score kept, 0..=1.
    #[schema(value_type = Option<String>, example = "")]
    score_threshold: Option<String>,
    /// Class labels kept, comma-separated.
    #[schema(value_type = Option<String>, example = "")]
    classes: Option<String>,
    /// Where to POST the collection, signed, once it ends (your default when empty).
    #[schema(value_type = Option<String>, example = "")]
    callback_url: Option<String>,
    /// Photos per detection task, 1..=1000 (32 when empty).
    #[schema(value_type = Option<String>, example = "")]
    batch_photos: Option<String>,
}

/// Uploads a collection of photos and queues it.
#[utoipa::path(
    post,
    path = "/api/v1/collections",
    tag = "collections",
    request_body(content = CollectionForm, content_type = "multipart/form-data",
        description = "Photos in `file` parts and/or archives in `archive` parts, with the options as fields; or one archive as the body (`application/x-tar`, `application/gzip`, `application/zip`) with the options in the query"),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 202, description = "Stored and queued", body = CollectionView,
         headers(("Location" = String, description = "The collection's URL"))),
        (status = 400, description = "`invalid_multipart`, `invalid_query`: the body or the query cannot be read", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body came too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: more photos or bytes than ARGUS_MAX_COLLECTION_PHOTOS / ARGUS_MAX_COLLECTION_BYTES (archives unpacked); nothing kept", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_input` (no photos, a bad option, an archive that is not tar, tar.gz or zip, a refused callback_url), `unknown_model`", body = ErrorBody),
        (status = 429, description = "`too_many_uploads`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was kept", body = ErrorBody),
    )
)]
pub async fn create_collection(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let staging = state
        .storage
        .new_collection_staging(&id)
        .map_err(ApiError::internal)?;
    let received = receive(&req, &user.0, &state, payload, &id, &staging).await;
    let (intake, options, callback_url) = match received {
        Ok(r) => r,
        Err(e) => {
            // Off the async thread: a refused collection may hold thousands of photos.
            let _ = web::block(move || std::fs::remove_dir_all(&staging)).await;
            return Err(e);
        }
    };
    commit(
        state.get_ref().clone(),
        user.0,
        id,
        intake,
        options,
        callback_url,
    )
    .await
}

type Received = (Intake, CollectionOptions, Option<String>);

async fn receive(
    req: &HttpRequest,
    user: &User,
    state: &web::Data<AppState>,
    payload: web::Payload,
    id: &str,
    staging: &std::path::Path,
) -> Result<Received, ApiError> {
    let settings = &state.collections;
    let limits = IntakeLimits {
        max_photos: settings.max_photos,
        max_bytes: settings.max_bytes,
        max_photo_bytes: settings.max_photo_bytes,
    };
    let _slot = state.uploads.acquire(&user.id)?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let overhead = 1 << 20;
    if declared.is_some_and(|n| n > limits.max_bytes.saturating_add(overhead)) {
        return Err(ApiError::payload_too_large(limits.max_bytes));
    }
    let budget = Budget::new(
        state
            .videos
            .ingest(limits.max_bytes.saturating_add(overhead), None),
    );
    let payload = Metered::new(payload, Arc::clone(&budget));
    let mut intake = Intake::new(staging.to_path_buf(), limits).map_err(ApiError::internal)?;

    let mut fields: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                format!("invalid query string: {e}"),
            )
        })?;
    // Options are few and short: each once, 64 KiB in all, whatever the body's size.
    let mut option_bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
    let mime = req.mime_type().ok().flatten();
    let essence = mime
        .as_ref()
        .map(|m| m.essence_str().to_string())
        .unwrap_or_default();
    let mut archives = 0u32;
    match essence.as_str() {
        "multipart/form-data" => {
            let mut multipart = Multipart::new(req.headers(), payload);
            while let Some(mut field) = budget.next(&mut multipart).await? {
                let name = field.name().unwrap_or_default().to_string();
                match name.as_str() {
                    "file" => {
                        let filename = field
                            .content_disposition()
                            .and_then(|cd| cd.get_filename())
                            .unwrap_or("")
                            .to_string();
                        receive_photo(&budget, &mut field, &mut intake, &filename).await?;
                    }
                    "archive" => {
                        archives += 1;
                        let path = staging.join(format!("archive-{archives}"));
                        spool(&budget, &mut field, &path, limits.max_bytes).await?;
                        intake = unpack(intake, path).await?;
                    }
                    "model" | "score_threshold" | "classes" | "callback_url" | "batch_photos" => {
                        let mut text = Vec::new();
                        while let Some(chunk) = budget.next(&mut field).await? {
                            if text.len() + chunk.len() > 4096 {
                                return Err(ApiError::invalid_input(format!(
                                    "the field `{name}` is longer than 4096 bytes"
                                )));
                            }
                            text.extend_from_slice(&chunk);
                        }
                        let text = String::from_utf8(text).map_err(|_| {
                            ApiError::invalid_input(format!("the field `{name}` is not UTF-8 text"))
                        })?;
                        option_bytes += name.len() + text.len();
                        if option_bytes > MAX_OPTION_BYTES {
                            return Err(ApiError::invalid_input(format!(
                                "the options come to more than {MAX_OPTION_BYTES} bytes"
                            )));
                        }
                        fields.push((name, text));
                    }
                    other => {
                        return Err(ApiError::invalid_input(format!(
                        "unknown field {:?}: photos go in `file` fields, archives in `archive`; \
                             options: model, score_threshold, classes, callback_url, batch_photos",
                        other.chars().take(64).collect::<String>()
                    )))
                    }
                }
            }
        }
        "application/x-tar"
        | "application/tar"
        | "application/gzip"
        | "application/x-gzip"
        | "application/x-gtar"
        | "application/zip"
        | "application/x-zip-compressed"
        | "application/octet-stream" => {
            let path = staging.join("archive-1");
            let mut payload = payload;
            spool(&budget, &mut payload, &path, limits.max_bytes).await?;
            intake = unpack(intake, path).await?;
        }
        _ => {
            return Err(ApiError::unsupported_media_type(
                "multipart/form-data (photos in `file`, archives in `archive`), or an archive \
                 as the body (application/x-tar, application/gzip, application/zip)",
            ))
        }
    }
    let (options, callback) = options_from(&fields, state).await?;
    if intake.photos == 0 && intake.refused == 0 {
        return Err(ApiError::invalid_input(
            "no photos: send them in `file` fields, or in an archive",
        ));
    }
    let _ = id;
    let intake = web::block(move || intake.finish())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok((intake, options, callback))
}

/// The options, checked; the callback URL given, or the owner's default now.
async fn options_from(
    fields: &[(String, String)],
    state: &AppState,
) -> Result<(CollectionOptions, Option<String>), ApiError> {
    let mut options = CollectionOptions::default();
    let mut callback = None;
    let total: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_OPTION_BYTES {
        return Err(ApiError::invalid_input(format!(
            "the options come to more than {MAX_OPTION_BYTES} bytes"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (name, value) in fields {
        if !seen.insert(name.as_str()) {
            return Err(ApiError::invalid_input(format!(
                "the option `{}` is given twice",
                name.chars().take(64).collect::<String>()
            )));
        }
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "model" => options.model = Some(value.to_string()),
            "score_threshold" => {
                options.score_threshold = Some(value.parse().ok().filter(|t: &f32| t.is_finite()).ok_or_else(|| {
                    ApiError::invalid_input(format!("score_threshold must be a number in 0..=1, not {value:?}"))
                })?)
            }
            "classes" => {
                let classes = options.classes.get_or_insert_with(Vec::new);
                for class in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    if classes.len() == argus_pipeline::tasks::MAX_CLASSES {
                        return Err(ApiError::invalid_input(format!(
                            "classes must list 1 to {} labels",
                            argus_pipeline::tasks::MAX_CLASSES
                        )));
                    }
                    classes.push(class.to_string());
                }
            }
            "callback_url" => callback = Some(value.to_string()),
            "batch_photos" => {
                options.batch_photos = Some(value.parse().map_err(|_| {
                    ApiError::invalid_input(format!("batch_photos must be a whole number in 1..=1000, not {value:?}"))
                })?)
            }
            other => {
                return Err(ApiError::invalid_input(format!(
                    "unknown option {:?}; options: model, score_threshold, classes, callback_url, batch_photos",
                    other.chars().take(64).collect::<String>()
                )))
            }
        }
    }
    options.validate().map_err(ApiError::invalid_input)?;
    if let Some(model) = &options.model {
        if !state.videos.served_models.iter().any(|m| m == model) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::UnknownModel,
                format!(
                    "model {:?} is not served here; served models: {}",
                    model.chars().take(64).collect::<String>(),
                    state.videos.served_models.join(", ")
                ),
            ));
        }
    }
    let callback = match callback {
        Some(raw) => Some(
            crate::webhooks::target::check(&raw, &state.webhooks.allow)
                .await
                .map_err(ApiError::invalid_input)?,
        ),
        None => None,
    };
    Ok((options, callback))
}

/// One `file` part into the next photo: within the per-photo limit, or listed as refused (its
/// bytes read and dropped).
async fn receive_photo(
    budget: &Budget,
    field: &mut actix_multipart::Field,
    intake: &mut Intake,
    filename: &str,
) -> Result<(), ApiError> {
    let path = intake.next_photo_path().map_err(intake_error)?;
    let limit = intake.limits().max_photo_bytes;
    let mut file = tokio::io::BufWriter::new(
        tokio::fs::File::create(&path)
            .await
            .map_err(ApiError::internal)?,
    );
    let mut n = 0u64;
    let mut over = false;
    while let Some(chunk) = budget.next(field).await? {
        n += chunk.len() as u64;
        if n > limit {
            over = true;
            continue; // read to its end, kept nowhere
        }
        intake
            .count_bytes(chunk.len() as u64)
            .map_err(intake_error)?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(ApiError::internal)?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(ApiError::internal)?;
    drop(file);
    let name = if filename.is_empty() {
        "(unnamed)"
    } else {
        filename
    };
    if over || n == 0 {
        tokio::fs::remove_file(&path)
            .await
            .map_err(ApiError::internal)?;
        let why = if over {
            format!("larger than {limit} bytes (ARGUS_MAX_PHOTO_BYTES)")
        } else {
            "empty".into()
        };
        return intake.refuse(name, &why).map_err(intake_error);
    }
    intake.accepted(name, n).map_err(intake_error)
}

/// An archive part (or body) to a file, within the collection's byte limit.
async fn spool<S, E>(
    budget: &Budget,
    stream: &mut S,
    path: &std::path::Path,
    max: u64,
) -> Result<(), ApiError>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: Into<ApiError>,
{
    let mut file = tokio::io::BufWriter::new(
        tokio::fs::File::create(path)
            .await
            .map_err(ApiError::internal)?,
    );
    let mut n = 0u64;
    while let Some(chunk) = budget.next(stream).await? {
        n += chunk.len() as u64;
        if n > max {
            return Err(ApiError::payload_too_large(max));
        }
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(ApiError::internal)?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}

/// Unpacks a spooled archive on a blocking thread, then removes it.
async fn unpack(mut intake: Intake, path: std::path::PathBuf) -> Result<Intake, ApiError> {
    let (intake, unpacked) = web::block(move || {
        let unpacked = intake.unpack(&path);
        let _ = std::fs::remove_file(&path);
        (intake, unpacked)
    })
    .await
    .map_err(ApiError::internal)?;
    unpacked.map_err(intake_error)?;
    Ok(intake)
}

fn intake_error(e: IntakeError) -> ApiError {
    match e {
        IntakeError::TooManyPhotos(_) | IntakeError::TooManyBytes(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            e.to_string(),
        ),
        IntakeError::BadArchive(why) => ApiError::invalid_input(why),
        IntakeError::Io(e) => ApiError::internal(e),
    }
}

/// Moves the received collection into place, records it and queues it; undone on failure.
async fn commit(
    state: AppState,
    owner: User,
    id: String,
    intake: Intake,
    options: CollectionOptions,
    callback_url: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let callback_url = match callback_url {
        Some(url) => Some(url),
        None => crate::webhooks::store::user_default_url(&state.db, &owner.id)
            .await
            .map_err(ApiError::database)?,
    };
    let dir = state
        .storage
        .collection_dir(&id)
        .map_err(ApiError::internal)?;
    if let Some(parent) = dir.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(ApiError::internal)?;
    }
    tokio::fs::rename(intake.dir(), &dir)
        .await
        .map_err(ApiError::internal)?;
    let undo = |state: &AppState, id: &str| {
        let (storage, id) = (state.storage.clone(), id.to_string());
        // Off the async thread; nothing waits for it.
        tokio::task::spawn_blocking(move || {
            let _ = storage.delete_collection(&id);
        });
    };
    let message = TaskMessage::new(&ProcessCollection {
        collection_id: id.clone(),
        photos: intake.photos,
        options: options.clone(),
    });
    let task_id = message.id.clone();
    let options_json = serde_json::to_string(&options).map_err(ApiError::internal)?;
    if let Err(e) = records::insert(
        &state.db,
        &NewCollection {
            id: &id,
            owner_id: &owner.id,
            task_id: &task_id,
            options: &options_json,
            photos: intake.photos,
            refused: intake.refused,
            size_bytes: intake.bytes,
            callback_url: callback_url.as_deref(),
        },
    )
    .await
    {
        undo(&state, &id);
        return Err(ApiError::database(e));
    }
    let queue = &state.queue;
    let queued = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        let live = argus_pipeline::run::queue_video(&queue.backend, &id, &task_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("collection {id} already has a state"))?;
        queue
            .broker
            .send(PROCESSOR_QUEUE, &message)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(live)
    })
    .await
    .unwrap_or_else(|_| Err("no answer within 15 s".into()));
    let live = match queued {
        Ok(live) => live,
        Err(e) => {
            let _ = argus_pipeline::run::delete(&queue.backend, &id).await;
            let _ = records::delete(&state.db, &id).await;
            undo(&state, &id);
            return Err(ApiError::unavailable("broker or result backend", e));
        }
    };
    let record = records::get(&state.db, &id)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| ApiError::internal("the collection's record vanished"))?;
    tracing::info!(collection_id = %id, photos = intake.photos, refused = intake.refused, by = %owner.username, "collection queued");
    let view = view(&record, Some(&live));
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, view.links.self_.clone()))
        .json(view))
}
