//! Where Argus finds what setup installed: the same defaults as `scripts/env.sh`.

use std::path::PathBuf;

/// `$ARGUS_HOME`, else `~/.cache/argus`.
pub fn argus_home() -> PathBuf {
    std::env::var_os("ARGUS_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/argus")))
        .unwrap_or_else(|| PathBuf::from(".argus"))
}

/// `$ARGUS_MODELS_DIR`, else `$ARGUS_HOME/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("ARGUS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| argus_home().join("models"))
}

/// `$ARGUS_MEDIA_DIR`, else `$ARGUS_HOME/media`: the sample photos and videos.
pub fn media_dir() -> PathBuf {
    std::env::var_os("ARGUS_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| argus_home().join("media"))
}

/// `$ARGUS_VENV`, else `$ARGUS_HOME/venv`: the Python venv setup makes (torch, Celery,
/// Flower, schemathesis, …).
pub fn venv() -> PathBuf {
    std::env::var_os("ARGUS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| argus_home().join("venv"))
}
