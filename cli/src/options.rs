//! A video's options as command-line flags, shared by `argus detect` (options of the local run)
//! and `argus submit` (query parameters of the upload): tracking, zones, lines and the cost
//! dial. Checked here as the API checks them, so a bad zone is refused before any work.

use anyhow::{bail, Context};
use argus_common::zones::{Line, Zone};
use argus_pipeline::tasks::VideoOptions;
use clap::Args;

#[derive(Args, Clone, Debug, Default)]
pub struct VideoFlags {
    /// Do not follow objects across frames (no track ids, tracks, zones or lines).
    #[arg(long)]
    pub no_track: bool,
    /// Zones to count tracks in: JSON, or @FILE holding it, e.g.
    /// '[{"name":"door","points":[[0,0],[100,0],[100,80]]}]' (pixels of the displayed frame;
    /// "normalized":true for 0..=1).
    #[arg(long, value_name = "JSON|@FILE")]
    pub zones: Option<String>,
    /// Lines to count tracks across: JSON, or @FILE holding it, e.g.
    /// '[{"name":"gate","start":[0,240],"end":[640,240]}]'; crossing left to right of
    /// start→end is "in".
    #[arg(long, value_name = "JSON|@FILE")]
    pub lines: Option<String>,
    /// Detect every Nth frame (1..=100); tracks carry boxes through the frames between.
    #[arg(long)]
    pub stride: Option<u32>,
    /// Decode and detect keyframes only.
    #[arg(long)]
    pub keyframes_only: bool,
}

impl VideoFlags {
    /// The options these flags give, checked (the frame's bounds are checked once probed).
    pub fn options(&self) -> anyhow::Result<VideoOptions> {
        let options = VideoOptions {
            track: self.no_track.then_some(false),
            zones: self.zones.as_deref().map(read::<Vec<Zone>>).transpose()?,
            lines: self.lines.as_deref().map(read::<Vec<Line>>).transpose()?,
            stride: self.stride,
            keyframes_only: self.keyframes_only.then_some(true),
            ..VideoOptions::default()
        };
        if let Err(why) = options.validate() {
            bail!("{why}");
        }
        Ok(options)
    }

    /// The same options as an upload's query parameters.
    pub fn query(&self) -> anyhow::Result<Vec<(&'static str, String)>> {
        let o = self.options()?;
        let mut query = Vec::new();
        if let Some(t) = o.track {
            query.push(("track", t.to_string()));
        }
        if let Some(z) = &o.zones {
            query.push(("zones", serde_json::to_string(z)?));
        }
        if let Some(l) = &o.lines {
            query.push(("lines", serde_json::to_string(l)?));
        }
        if let Some(n) = o.stride {
            query.push(("stride", n.to_string()));
        }
        if let Some(k) = o.keyframes_only {
            query.push(("keyframes_only", k.to_string()));
        }
        Ok(query)
    }
}

/// JSON given inline or as `@file`.
fn read<T: serde::de::DeserializeOwned>(value: &str) -> anyhow::Result<T> {
    let text = match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => value.to_string(),
    };
    serde_json::from_str(&text).context("zones and lines are JSON lists (see --help)")
}
