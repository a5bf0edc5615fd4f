//! An upload's options, as fields of a multipart body or query parameters: each taken once,
//! an empty value as absent, then checked together ([`OptionsInput::check`]) into the
//! [`VideoOptions`] of `process_video`. The file itself is [`super::upload`]'s.

use actix_web::http::StatusCode;
use argus_common::zones::{Line, Zone};
use argus_pipeline::tasks::{VideoOptions, MAX_CLASSES};

use crate::error::{ApiError, ErrorCode};

/// Longest option field.
pub(super) const MAX_FIELD_BYTES: usize = 4096;
/// Longest `zones` or `lines` field: 16 zones of 64 corners written with full-precision
/// coordinates (`[0.123456789012345, 0.987654321098765]`, ~40 bytes a point) fit.
pub(super) const MAX_SHAPES_BYTES: usize = 64 * 1024;
/// The option names, as fields and query parameters.
pub(super) const OPTION_NAMES: &str = "model, chunk_size, score_threshold, classes, annotate, \
                                       track, zones, lines, stride, keyframes_only, callback_url";

/// Options as given, checked once all are in.
#[derive(Default)]
pub(super) struct OptionsInput {
    model: Option<String>,
    chunk_size: Option<u64>,
    score_threshold: Option<f32>,
    classes: Option<Vec<String>>,
    annotate: Option<bool>,
    track: Option<bool>,
    zones: Option<Vec<Zone>>,
    lines: Option<Vec<Line>>,
    stride: Option<u32>,
    keyframes_only: Option<bool>,
    /// Where the end of the run is announced (checked by [`Self::callback_url`]); not an
    /// option of `process_video`: the API delivers it.
    callback_url: Option<String>,
}

fn once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), ApiError> {
    if slot.is_some() {
        return Err(ApiError::invalid_input(format!(
            "the option `{name}` is given twice"
        )));
    }
    *slot = Some(value);
    Ok(())
}

impl OptionsInput {
    /// Takes one option; an empty value counts as absent (forms send unfilled fields empty).
    pub(super) fn set(&mut self, name: &str, value: &str) -> Result<(), ApiError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(());
        }
        match name {
            "model" => once(&mut self.model, value.to_string(), name),
            "callback_url" => once(&mut self.callback_url, value.to_string(), name),
            "chunk_size" => {
                let n = value.parse::<u64>().map_err(|_| {
                    ApiError::invalid_input(format!(
                        "chunk_size must be a whole number of frames, not {value:?}"
                    ))
                })?;
                once(&mut self.chunk_size, n, name)
            }
            "score_threshold" => {
                let t = value
                    .parse::<f32>()
                    .ok()
                    .filter(|t| t.is_finite())
                    .ok_or_else(|| {
                        ApiError::invalid_input(format!(
                            "score_threshold must be a number in 0..=1, not {value:?}"
                        ))
                    })?;
                once(&mut self.score_threshold, t, name)
            }
            "annotate" | "track" | "keyframes_only" => {
                let yes = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => {
                        return Err(ApiError::invalid_input(format!(
                            "{name} must be true or false, not {:?}",
                            value.chars().take(64).collect::<String>()
                        )))
                    }
                };
                let slot = match name {
                    "track" => &mut self.track,
                    "annotate" => &mut self.annotate,
                    _ => &mut self.keyframes_only,
                };
                once(slot, yes, name)
            }
            "stride" => {
                let n = value.parse::<u32>().map_err(|_| {
                    ApiError::invalid_input(format!(
                        "stride must be a whole number of frames, not {:?}",
                        value.chars().take(64).collect::<String>()
                    ))
                })?;
                once(&mut self.stride, n, name)
            }
            "zones" => {
                let zones = serde_json::from_str(value).map_err(|e| shapes_error(name, e))?;
                once(&mut self.zones, zones, name)
            }
            "lines" => {
                let lines = serde_json::from_str(value).map_err(|e| shapes_error(name, e))?;
                once(&mut self.lines, lines, name)
            }
            "classes" => {
                let classes = self.classes.get_or_insert_with(Vec::new);
                for class in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    // Refused as they come: a list is never held beyond what may be kept.
                    if classes.len() == MAX_CLASSES {
                        return Err(ApiError::invalid_input(format!(
                            "classes must list 1 to {MAX_CLASSES} labels"
                        )));
                    }
                    classes.push(class.to_string());
                }
                Ok(())
            }
            other => Err(ApiError::invalid_input(format!(
                "unknown option {:?}; options: {OPTION_NAMES} (and filename for a raw body)",
                other.chars().take(64).collect::<String>()
            ))),
        }
    }

    /// The callback URL, if given and allowed ([`crate::webhooks::target::check`]).
    pub(super) async fn callback_url(
        &self,
        allow: &crate::webhooks::target::AllowList,
    ) -> Result<Option<String>, ApiError> {
        match &self.callback_url {
            Some(raw) => crate::webhooks::target::check(raw, allow)
                .await
                .map(Some)
                .map_err(ApiError::invalid_input),
            None => Ok(None),
        }
    }

    /// The options, if a served model (or none) is named and every value is in range.
    pub(super) fn check(&self, served_models: &[String]) -> Result<VideoOptions, ApiError> {
        if let Some(model) = &self.model {
            if !served_models.iter().any(|m| m == model) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::UnknownModel,
                    format!(
                        "model {:?} is not served here; served models: {}",
                        model.chars().take(64).collect::<String>(),
                        served_models.join(", ")
                    ),
                ));
            }
        }
        let options = VideoOptions {
            model: self.model.clone(),
            chunk_size: self.chunk_size,
            score_threshold: self.score_threshold,
            classes: self.classes.clone(),
            annotate: self.annotate,
            track: self.track,
            zones: self.zones.clone(),
            lines: self.lines.clone(),
            stride: self.stride,
            keyframes_only: self.keyframes_only,
        };
        options.validate().map_err(ApiError::invalid_input)?;
        Ok(options)
    }
}

/// A `zones` or `lines` value that is not the JSON they take.
fn shapes_error(name: &str, e: serde_json::Error) -> ApiError {
    let shape = if name == "zones" {
        r#"[{"name": "door", "points": [[x, y], [x, y], [x, y]], "normalized": false}]"#
    } else {
        r#"[{"name": "gate", "start": [x, y], "end": [x, y], "normalized": false}]"#
    };
    ApiError::invalid_input(format!("{name} must be JSON like {shape}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_check() {
        let served = vec!["coco-centernet".to_string()];
        let mut input = OptionsInput::default();
        input.set("model", " coco-centernet ").unwrap();
        input.set("chunk_size", "16").unwrap();
        input.set("score_threshold", "0.5").unwrap();
        input.set("classes", "person, car").unwrap();
        input.set("classes", "dog").unwrap();
        input.set("score_threshold", "").unwrap(); // empty: absent
        input.set("score_threshold", "0.7").unwrap_err(); // given twice
        let options = input.check(&served).unwrap();
        assert_eq!(options.model.as_deref(), Some("coco-centernet"));
        assert_eq!(options.chunk_size, Some(16));
        assert_eq!(options.score_threshold, Some(0.5));
        assert_eq!(
            options.classes.unwrap(),
            ["person", "car", "dog"].map(String::from)
        );

        let code = |name: &str, value: &str| {
            let mut input = OptionsInput::default();
            match input.set(name, value) {
                Err(e) => e.code,
                Ok(()) => input
                    .check(&served)
                    .map(|_| ErrorCode::BadRequest)
                    .unwrap_or_else(|e| e.code),
            }
        };
        assert_eq!(code("model", "yolo"), ErrorCode::UnknownModel);
        assert_eq!(code("chunk_size", "0"), ErrorCode::InvalidInput);
        assert_eq!(code("chunk_size", "many"), ErrorCode::InvalidInput);
        assert_eq!(code("score_threshold", "NaN"), ErrorCode::InvalidInput);
        assert_eq!(code("score_threshold", "2"), ErrorCode::InvalidInput);
        assert_eq!(code("classes", ","), ErrorCode::InvalidInput);
        assert_eq!(code("colour", "red"), ErrorCode::InvalidInput);
        assert_eq!(
            code("model", ""),
            ErrorCode::BadRequest,
            "empty is absent: accepted"
        );
    }
}
