//! Which devices run the model: every CUDA device libtorch can see, else the CPU.

use std::sync::Once;

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
    /// The devices to load the model on.
    pub fn resolve(&self) -> Result<Vec<Device>, DetectorError> {
        load_cuda_backend();
        let count = tch::Cuda::device_count();
        match self {
            DeviceChoice::Cpu => Ok(vec![Device::Cpu]),
            DeviceChoice::Auto if count == 0 => Ok(vec![Device::Cpu]),
            DeviceChoice::Auto => Ok((0..count as usize).map(Device::Cuda).collect()),
            DeviceChoice::Cuda(ids) if ids.is_empty() && count == 0 => {
                Err(DetectorError::DeviceUnavailable {
                    device: "cuda".into(),
                    available: 0,
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

/// Loads libtorch's CUDA backend if it is installed and the machine has an NVIDIA driver.
///
/// The linker drops `libtorch_cuda.so` from the binary (`--as-needed`: no symbol of it is used
/// directly), and then libtorch never sees a GPU. Opening it at run time instead of linking it
/// keeps one binary for both worlds: on a CPU-only install the open fails and we run on CPU.
/// Where no driver is present it is not opened at all: CUDA's libraries cost a process ~160 MB
/// of resident memory just by being loaded (measured: 158 MB of a CPU run's 860 MB).
fn load_cuda_backend() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !nvidia_driver_present() {
            tracing::debug!("no NVIDIA driver; CPU only");
            return;
        }
        let name = c"libtorch_cuda.so";
        // SAFETY: dlopen with a valid NUL-terminated name; the handle is kept for the
        // process's lifetime on purpose (the backend registers itself when loaded).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            tracing::debug!("libtorch_cuda.so not loadable; CPU only");
        }
    });
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
        assert!(err.to_string().contains("CUDA device"), "{err}");
    }
}
