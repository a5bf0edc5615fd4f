//! Celery protocol v2 task messages, whichever broker carries them.
//!
//! A message is `[args, kwargs, embed]` in JSON, with the task name and id in its headers.
//! Python's `app.send_task("process_video", args=[video_id], queue="processor")` and Rust's
//! [`TaskMessage::new`] produce messages that decode to the same payload: positional args are
//! mapped onto the task's parameter names ([`TaskPayload::ARGS`]), as Celery does. Which tasks
//! exist, and what they carry, is the application's business (`argus_pipeline::tasks`).

use celery::protocol::{Message, MessageHeaders, MessageProperties};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// A task payload: the task's name and its parameter names (the order of positional args).
pub trait TaskPayload: Serialize + DeserializeOwned {
    const NAME: &'static str;
    const ARGS: &'static [&'static str];
}

/// A task message as the workers see it, whichever broker carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    pub id: String,
    pub task: String,
    /// Keyword arguments (positional ones already mapped onto names where the task is known).
    pub kwargs: Map<String, Value>,
    /// Positional arguments of a task we do not know the parameters of.
    pub args: Vec<Value>,
    pub retries: u32,
    pub eta: Option<DateTime<Utc>>,
    pub group: Option<String>,
    pub root_id: Option<String>,
    pub parent_id: Option<String>,
}

/// Why a message cannot be turned into a task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported content type '{0}' (JSON only)")]
    ContentType(String),
    #[error("body is not a Celery v2 JSON body [args, kwargs, embed]: {0}")]
    Body(String),
    #[error("task {task}: bad arguments: {reason}")]
    Arguments { task: String, reason: String },
}

impl TaskMessage {
    /// A new message for `payload`, with a fresh uuid4 id.
    pub fn new<T: TaskPayload>(payload: &T) -> TaskMessage {
        let kwargs = match serde_json::to_value(payload).expect("payloads serialize") {
            Value::Object(map) => map,
            other => panic!("a payload serializes to an object, not {other}"),
        };
        TaskMessage {
            id: uuid::Uuid::new_v4().to_string(),
            task: T::NAME.to_string(),
            kwargs,
            args: Vec::new(),
            retries: 0,
            eta: None,
            group: None,
            root_id: None,
            parent_id: None,
        }
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The payload, when this message is for task `T`.
    pub fn payload<T: TaskPayload>(&self) -> Result<T, DecodeError> {
        let mut kwargs = self.kwargs.clone();
        for (name, value) in T::ARGS.iter().zip(&self.args) {
            kwargs
                .entry(name.to_string())
                .or_insert_with(|| value.clone());
        }
        serde_json::from_value(Value::Object(kwargs)).map_err(|e| DecodeError::Arguments {
            task: self.task.clone(),
            reason: e.to_string(),
        })
    }

    /// Decodes a Celery protocol v2 message.
    pub fn from_celery(message: &Message) -> Result<TaskMessage, DecodeError> {
        if message.properties.content_type != "application/json" {
            return Err(DecodeError::ContentType(
                message.properties.content_type.clone(),
            ));
        }
        let body: Value = serde_json::from_slice(&message.raw_body)
            .map_err(|e| DecodeError::Body(e.to_string()))?;
        let (args, kwargs) = match body {
            Value::Array(mut parts) if (2..=3).contains(&parts.len()) => {
                let kwargs = parts.swap_remove(1);
                (parts.swap_remove(0), kwargs)
            }
            other => return Err(DecodeError::Body(truncate(&other.to_string()))),
        };
        let (Value::Array(args), Value::Object(kwargs)) = (args, kwargs) else {
            return Err(DecodeError::Body(
                "args must be a list and kwargs an object".into(),
            ));
        };
        let h = &message.headers;
        Ok(TaskMessage {
            id: h.id.clone(),
            task: h.task.clone(),
            kwargs,
            args,
            retries: h.retries.unwrap_or(0),
            eta: h.eta,
            group: h.group.clone(),
            root_id: h.root_id.clone(),
            parent_id: h.parent_id.clone(),
        })
    }

    /// Encodes as a Celery protocol v2 message (JSON body, kwargs only).
    pub fn to_celery(&self) -> Message {
        let body = json!([self.args, self.kwargs, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]);
        Message {
            properties: MessageProperties {
                correlation_id: self.id.clone(),
                content_type: "application/json".into(),
                content_encoding: "utf-8".into(),
                reply_to: None,
            },
            headers: MessageHeaders {
                id: self.id.clone(),
                task: self.task.clone(),
                lang: Some("rust".into()),
                root_id: Some(self.root_id.clone().unwrap_or_else(|| self.id.clone())),
                parent_id: self.parent_id.clone(),
                group: self.group.clone(),
                eta: self.eta,
                retries: Some(self.retries),
                origin: Some(origin()),
                ..Default::default()
            },
            raw_body: serde_json::to_vec(&body).expect("JSON values serialize"),
        }
    }
}

/// `argus<pid>@<host>`, read once: it goes on every message sent.
fn origin() -> String {
    static ORIGIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("argus{}@{}", std::process::id(), host.trim())
        })
        .clone()
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Resize {
        image: String,
        #[serde(default)]
        width: Option<u32>,
        #[serde(default)]
        height: Option<u32>,
    }

    impl TaskPayload for Resize {
        const NAME: &'static str = "resize";
        const ARGS: &'static [&'static str] = &["image", "width", "height"];
    }

    fn resize() -> Resize {
        Resize {
            image: "a.png".into(),
            width: Some(7),
            height: None,
        }
    }

    #[test]
    fn round_trips_through_a_celery_message() {
        let message = TaskMessage::new(&resize()).with_group("c");
        let celery = message.to_celery();
        assert_eq!(celery.headers.task, "resize");
        assert_eq!(celery.properties.correlation_id, message.id);
        let back = TaskMessage::from_celery(&celery).unwrap();
        assert_eq!(back.payload::<Resize>().unwrap(), resize());
        assert_eq!(back.group.as_deref(), Some("c"));
    }

    #[test]
    fn maps_python_positional_args_onto_names() {
        let mut celery = TaskMessage::new(&resize()).to_celery();
        celery.raw_body = br#"[["abc", null, 16], {"width": 5}, {"callbacks": null}]"#.to_vec();
        let message = TaskMessage::from_celery(&celery).unwrap();
        let p = message.payload::<Resize>().unwrap();
        assert_eq!(p.image, "abc");
        assert_eq!(p.height, Some(16));
        assert_eq!(p.width, Some(5), "a keyword wins over its position");
    }

    #[test]
    fn bad_bodies_and_arguments_are_errors_not_panics() {
        let good = TaskMessage::new(&resize()).to_celery();
        let mut not_json = good.clone();
        not_json.raw_body = b"\x00garbage".to_vec();
        assert!(matches!(
            TaskMessage::from_celery(&not_json),
            Err(DecodeError::Body(_))
        ));
        let mut pickled = good.clone();
        pickled.properties.content_type = "application/x-python-serialize".into();
        assert!(matches!(
            TaskMessage::from_celery(&pickled),
            Err(DecodeError::ContentType(_))
        ));
        let mut wrong_args = good.clone();
        wrong_args.raw_body = br#"[[], {"image": 7}, {}]"#.to_vec();
        let message = TaskMessage::from_celery(&wrong_args).unwrap();
        assert!(matches!(
            message.payload::<Resize>(),
            Err(DecodeError::Arguments { .. })
        ));
    }
}
