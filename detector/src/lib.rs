//! The detector role of Argus: everything that touches the model.
//!
//! A model is a TorchScript file plus a manifest naming its adapter, labels and input size
//! ([`registry`]). [`Detector`] loads it once per device (every CUDA device when present, else
//! the CPU), letterboxes frames ([`preprocess`]), runs them in batches and turns the raw output
//! into [`Detection`]s in source-pixel coordinates ([`adapter`]).
//!
//! This is the only library crate that links libtorch. It knows nothing of HTTP or brokers.

pub mod adapter;
pub mod allocator;
pub mod batcher;
pub mod config;
pub mod device;
pub mod error;
pub mod images;
pub mod metrics;
pub mod model;
pub mod nms;
pub mod photos;
pub mod preprocess;
pub mod registry;
pub mod resample;
pub mod service;
pub mod tasks;
pub mod video;

pub use argus_common::{BoundingBox, Detection, Frame};
pub use batcher::Batcher;
pub use device::DeviceChoice;
pub use error::DetectorError;
pub use model::{Detector, DetectorOptions};
pub use registry::{ModelSpec, Registry};
