//! Which devices run the model: every CUDA device libtorch can see, else the CPU.

use std::sync::OnceLock;

use tch::Device;

use crate::DetectorError;

/// The user's device choice (`--device` / `ARGUS_DEVICE`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// Every CUDA device when there is one, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// These CUDA device indices; an empty list means all of them.
    Cuda(Vec<usize>),
}

impl std::str::FromStr for DeviceChoice {
    type Err = DetectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DetectorError::BadDevice(s.to_string());
        match s.trim() {
            "" | "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(Vec::new())),
            other => {
                let list = other.strip_prefix("cuda:").ok_or_else(bad)?;
                let ids = list
                    .split(',')
                    .map(|i| i.trim().parse::<usize>().map_err(|_| bad()))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(DeviceChoice::Cuda(ids))
            }
        }
    }
}

impl DeviceChoice {
    /// The devices to load the model on. Asked for CUDA (`cuda`, `cuda:N`) where none works,
    /// an error that says why (no driver in the container, the loader's own message, the CUDA
    /// version this build needs); `auto` falls back to the CPU, loudly when a driver is there.
    pub fn resolve(&self) -> Result<Vec<Device>, DetectorError> {
        if *self == DeviceChoice::Cpu {
            return Ok(vec![Device::Cpu]);
        }
        let backend = load_cuda_backend();
        let count = tch::Cuda::device_count();
        match self {
            DeviceChoice::Cpu => Ok(vec![Device::Cpu]),
            DeviceChoice::Auto if count == 0 => {
                if !matches!(backend, CudaBackend::NoDriver) {
                    tracing::error!(
                        why = %why_no_cuda(backend),
                        "an NVIDIA driver is present but CUDA does not work: running on the CPU"
                    );
                }
                Ok(vec![Device::Cpu])
            }
            DeviceChoice::Auto => Ok((0..count as usize).map(Device::Cuda).collect()),
            DeviceChoice::Cuda(ids) if ids.is_empty() && count == 0 => {
                Err(DetectorError::CudaUnavailable {
                    device: "cuda".into(),
                    why: why_no_cuda(backend),
                })
            }
            DeviceChoice::Cuda(ids) if ids.is_empty() => {
                Ok((0..count as usize).map(Device::Cuda).collect())
            }
            DeviceChoice::Cuda(ids) => ids
                .iter()
                .map(|&i| {
                    if (i as i64) < count {
                        Ok(Device::Cuda(i))
                    } else if count == 0 {
                        Err(DetectorError::CudaUnavailable {
                            device: format!("cuda:{i}"),
                            why: why_no_cuda(backend),
                        })
                    } else {
                        Err(DetectorError::DeviceUnavailable {
                            device: format!("cuda:{i}"),
                            available: count,
                        })
                    }
                })
                .collect(),
        }
    }
}

/// What loading libtorch's CUDA backend came to.
#[derive(Debug, Clone, PartialEq)]
pub enum CudaBackend {
    /// No NVIDIA driver is visible here: nothing was loaded.
    NoDriver,
    Loaded,
    /// The driver is there, the backend is not: the dynamic loader's own message.
    NotLoadable(String),
}

/// The CUDA this build's libtorch needs (the PyPI wheel `torch==2.13.0+cu130`).
pub const CUDA_NEEDED: &str = "CUDA 13.0: an NVIDIA driver 580 or newer";

/// Why CUDA does not work here, for a person to act on.
pub fn why_no_cuda(backend: &CudaBackend) -> String {
    let driver = std::fs::read_to_string("/proc/driver/nvidia/version")
        .ok()
        .and_then(|v| v.lines().next().map(str::trim).map(str::to_string));
    let found = driver.map_or(String::new(), |d| format!(" (driver: {d})"));
    match backend {
        CudaBackend::NoDriver => format!(
            "no NVIDIA driver is visible here (/dev/nvidiactl, /proc/driver/nvidia/version): on \
             Kubernetes, request nvidia.com/gpu and check the NVIDIA device plugin and runtime \
             class; this build needs {CUDA_NEEDED}"
        ),
        CudaBackend::NotLoadable(error) => format!(
            "libtorch's CUDA backend cannot be loaded: {error}{found}; this build needs \
             {CUDA_NEEDED}"
        ),
        CudaBackend::Loaded => format!(
            "libtorch's CUDA backend is loaded but sees no device{found}: a driver older than \
             this build needs ({CUDA_NEEDED}), or no device given to this container"
        ),
    }
}

/// Loads libtorch's CUDA backend if it is installed and the machine has an NVIDIA driver.
///
/// The linker drops `libtorch_cuda.so` from the binary (`--as-needed`: no symbol of it is used
/// directly), and then libtorch never sees a GPU. Opening it at run time instead of linking it
/// keeps one binary for both worlds: on a CPU-only install the open fails and we run on CPU.
/// Where no driver is present it is not opened at all: CUDA's libraries cost a process ~160 MB
/// of resident memory just by being loaded (measured: 158 MB of a CPU run's 860 MB).
pub fn load_cuda_backend() -> &'static CudaBackend {
    static BACKEND: OnceLock<CudaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        if !nvidia_driver_present() {
            tracing::debug!("no NVIDIA driver; CPU only");
            return CudaBackend::NoDriver;
        }
        let name = c"libtorch_cuda.so";
        // SAFETY: dlopen with a valid NUL-terminated name; the handle is kept for the
        // process's lifetime on purpose (the backend registers itself when loaded). dlerror
        // returns the loader's message for this thread's last failure, copied at once.
        unsafe {
            let handle = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
            if handle.is_null() {
                let error = libc::dlerror();
                let error = if error.is_null() {
                    "libtorch_cuda.so: unknown dlopen error".to_string()
                } else {
                    std::ffi::CStr::from_ptr(error)
                        .to_string_lossy()
                        .into_owned()
                };
                tracing::error!(error, "libtorch_cuda.so cannot be loaded");
                return CudaBackend::NotLoadable(error);
            }
        }
        CudaBackend::Loaded
    })
}

/// Whether this machine (or container) shows an NVIDIA driver: its device nodes (Linux, and
/// what the Kubernetes device plugin mounts), its /proc entry, or WSL's GPU node.
fn nvidia_driver_present() -> bool {
    [
        "/dev/nvidiactl",
        "/dev/nvidia0",
        "/proc/driver/nvidia/version",
        "/dev/dxg",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

/// A device's name as users write it: `cpu`, `cuda:0`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_choices() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(vec![])
        );
        assert_eq!(
            "cuda:0,2".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(vec![0, 2])
        );
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn cpu_always_resolves_and_missing_gpus_are_an_error() {
        assert_eq!(DeviceChoice::Cpu.resolve().unwrap(), vec![Device::Cpu]);
        let count = tch::Cuda::device_count();
        let err = DeviceChoice::Cuda(vec![count as usize])
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("cuda:"), "{err}");
        if count == 0 {
            // No GPU here: `cuda` says why, and what this build needs.
            let err = DeviceChoice::Cuda(vec![])
                .resolve()
                .unwrap_err()
                .to_string();
            assert!(err.contains(CUDA_NEEDED), "{err}");
            assert!(
                err.contains("driver") || err.contains("cannot be loaded"),
                "{err}"
            );
        }
    }
}
