//! A loaded model: one TorchScript replica per device, batched inference across them.

use tch::{CModule, Device, IValue, Kind, Tensor};

use crate::adapter::{check_embed, describe_faces};
use crate::device::device_name;
use crate::preprocess::letterbox_batch;
use crate::{Detection, DetectorError, DeviceChoice, Frame, ModelSpec};

/// Forward passes at load time (see [`Detector::load`]).
const WARMUP_RUNS: usize = 3;

/// How to run a model.
#[derive(Debug, Clone)]
pub struct DetectorOptions {
    pub device: DeviceChoice,
    /// Frames per forward pass on one device; `None`: 1 on CPU (larger batches gain nothing
    /// there and cost memory), 16 on a GPU.
    pub max_batch: Option<usize>,
    /// Overrides the manifest's score threshold.
    pub score_threshold: Option<f32>,
    /// CPU intra-op threads per replica; `None`: the cores shared among the replicas.
    pub cpu_threads: Option<usize>,
    /// Model replicas on the CPU, each served by its own batching thread; `None`: 1 when
    /// `cpu_threads` is given, else one per core (see [`Detector::load`]).
    pub cpu_replicas: Option<usize>,
    /// Video frames are scaled down to the input while decoding, in 8 bits (faster; moves
    /// scores slightly, see `RgbConverter::fitting`), not in float by the letterbox.
    pub fast_resize: bool,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            device: DeviceChoice::Auto,
            max_batch: None,
            score_threshold: None,
            cpu_threads: None,
            cpu_replicas: None,
            fast_resize: false,
        }
    }
}

struct Replica {
    device: Device,
    module: CModule,
    /// `Some(k)`: run the adapter's heads method and decode here, keeping `forward`'s top `k`
    /// (CPU replicas, when the model has that method); `None`: run `forward`.
    heads_top_k: Option<usize>,
}

/// A model ready to run on every chosen device.
pub struct Detector {
    spec: ModelSpec,
    replicas: Vec<Replica>,
    max_batch: usize,
    score_threshold: f32,
    fast_resize: bool,
    /// `(replicas, intra-op threads each)` on the CPU; `None` on GPUs.
    cpu_split: Option<(usize, usize)>,
}

impl Detector {
    /// Loads the model on each device and runs one frame through it, so that a corrupt or
    /// mismatched model fails here, with its path, rather than on the first real frame.
    pub fn load(spec: ModelSpec, options: &DetectorOptions) -> Result<Detector, DetectorError> {
        if !spec.path.is_file() {
            return Err(DetectorError::ModelMissing { path: spec.path });
        }
        let devices = options.device.resolve()?;
        let path = spec.path.clone();
        let load_err = |reason: String| DetectorError::ModelLoad {
            path: path.clone(),
            reason,
        };
        let score_threshold = options.score_threshold.unwrap_or(spec.score_threshold);
        let load_replica = |spec: &ModelSpec, device: Device| -> Result<Replica, DetectorError> {
            let mut module = CModule::load_on_device(&spec.path, device)
                .map_err(|e| load_err(first_line(&e.to_string())))?;
            module.set_eval();
            check_embed(&module, device, spec).map_err(|e| load_err(first_line(&e.to_string())))?;
            // On a GPU the graph's own decoder keeps the heatmap on the device; on a CPU ours
            // is cheaper. A threshold of 0 would admit the graph's zero-score filler rows, which
            // only `forward` reproduces.
            let heads_top_k = if device == Device::Cpu && score_threshold > 0.0 {
                heads_top_k(spec, &module)
            } else {
                None
            };
            Ok(Replica {
                device,
                module,
                heads_top_k,
            })
        };
        let on_cpu = devices == [Device::Cpu];
        if !on_cpu {
            if let Some(threads) = options.cpu_threads {
                tch::set_num_threads(threads.max(1) as i32);
            }
        }
        let replicas = devices
            .iter()
            .take(if on_cpu { 1 } else { devices.len() })
            .map(|&d| load_replica(&spec, d))
            .collect::<Result<Vec<_>, _>>()?;
        let default_batch = if replicas.iter().any(|r| r.device.is_cuda()) {
            16
        } else {
            1
        };
        let mut detector = Detector {
            max_batch: options.max_batch.unwrap_or(default_batch).max(1),
            score_threshold,
            fast_resize: options.fast_resize,
            spec,
            replicas,
            cpu_split: None,
        };
        if on_cpu {
            // Replicas on the CPU share the cores: each gets its part of them unless told.
            // libtorch's intra-op thread count is process-wide: every replica's thread runs its
            // forward passes with this many.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let (count, threads) = match (options.cpu_replicas, options.cpu_threads) {
                (Some(n), threads) => {
                    let n = n.max(1);
                    (n, threads.unwrap_or((cores / n).max(1)))
                }
                (None, Some(threads)) => (1, threads),
                // One replica per core, 1 thread each: the fastest split end to end wherever
                // it was measured (cli/benches/cpu.rs; docs/performance.md). A small model's
                // forward pass scales poorly over OpenMP threads, and in a pipeline the
                // decoders share the cores: a preempted OpenMP thread stalls its whole team at
                // the next barrier, where a replica of its own stalls alone. At 720p on 2 cores
                // 2 × 1 made 23 frames/s and 1 × 2 made 18, though the network alone, timed on
                // its own, ran up to 14% faster as 1 × 2 (measuring the split at load picked
                // the slower one about a run in five).
                (None, None) => (cores, 1),
            };
            let threads = threads.max(1);
            tch::set_num_threads(threads as i32);
            detector.cpu_split = Some((count, threads));
            for _ in 1..count {
                let replica = load_replica(&detector.spec, Device::Cpu)?;
                detector.replicas.push(replica);
            }
        }
        // The first runs check the model; they also let TorchScript's profiling executor
        // specialize the graph (it does so over its first couple of runs, slowly), so that
        // the first real frames run at full speed.
        let probe = detector.blank_frame();
        let probes = vec![&probe; detector.max_batch];
        for replica in &detector.replicas {
            for _ in 0..WARMUP_RUNS {
                detector.run_batch(replica, &probes).map_err(|e| match e {
                    DetectorError::Inference(t) => load_err(first_line(&t.to_string())),
                    other => other,
                })?;
            }
        }
        tracing::info!(
            model = %detector.spec.name,
            devices = ?detector.device_names(),
            max_batch = detector.max_batch,
            decoder = if detector.decodes_heads() {
                "argus (raw heads)"
            } else {
                "in the model"
            },
            "model loaded"
        );
        Ok(detector)
    }

    /// A black frame of the model's input size: what load-time runs feed the model.
    fn blank_frame(&self) -> Frame {
        let (w, h) = (self.spec.input_width, self.spec.input_height);
        Frame::new(w, h, vec![0; (w * h * 3) as usize]).expect("input size is positive")
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Chunks worth having in hand at once: two per replica, so that one decodes while the
    /// other's frames run and every replica has work (a chunk keeps only `2 × max_batch`
    /// frames in flight). The default of `argus detect`'s and `argus serve`'s tasks and of a
    /// detector worker's concurrency.
    pub fn chunk_tasks(&self) -> usize {
        2 * self.replicas.len()
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    pub fn score_threshold(&self) -> f32 {
        self.score_threshold
    }

    /// Whether every replica decodes the network's raw heads itself (the CPU path) rather than
    /// running the model's in-graph decoder.
    pub fn decodes_heads(&self) -> bool {
        self.replicas.iter().all(|r| r.heads_top_k.is_some())
    }

    /// How the CPU's cores are used: `(replicas, intra-op threads each)`; `None` on GPUs.
    pub fn cpu_split(&self) -> Option<(usize, usize)> {
        self.cpu_split
    }

    /// Whether video frames should reach [`Self::detect`] already scaled to the input.
    pub fn fast_resize(&self) -> bool {
        self.fast_resize
    }

    /// One name per replica: `cuda:0`, `cpu`, or `cpu:0`, `cpu:1` for several CPU replicas.
    pub fn device_names(&self) -> Vec<String> {
        let cpus = self
            .replicas
            .iter()
            .filter(|r| r.device == Device::Cpu)
            .count();
        let mut cpu = 0;
        self.replicas
            .iter()
            .map(|r| match r.device {
                Device::Cpu if cpus > 1 => {
                    cpu += 1;
                    format!("cpu:{}", cpu - 1)
                }
                device => device_name(device),
            })
            .collect()
    }

    /// Detects objects in each frame; `result[i]` belongs to `frames[i]`.
    ///
    /// Frames are cut into batches of at most `max_batch`; with several devices the batches
    /// run concurrently, one thread per device.
    pub fn detect(&self, frames: &[&Frame]) -> Result<Vec<Vec<Detection>>, DetectorError> {
        let batches: Vec<&[&Frame]> = frames.chunks(self.max_batch).collect();
        if self.replicas.len() == 1 || batches.len() <= 1 {
            let mut out = Vec::with_capacity(frames.len());
            for batch in batches {
                out.extend(self.run_batch(&self.replicas[0], batch)?);
            }
            return Ok(out);
        }
        // Batch b goes to device b % devices; each thread returns its batches in order.
        let n = self.replicas.len();
        let per_device: Vec<Result<Vec<Vec<Vec<Detection>>>, DetectorError>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = self
                    .replicas
                    .iter()
                    .enumerate()
                    .map(|(d, replica)| {
                        let mine: Vec<&[&Frame]> =
                            batches.iter().skip(d).step_by(n).copied().collect();
                        scope.spawn(move || {
                            mine.into_iter()
                                .map(|b| self.run_batch(replica, b))
                                .collect::<Result<Vec<_>, _>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("inference thread panicked"))
                    .collect()
            });
        let mut per_device: Vec<std::vec::IntoIter<Vec<Vec<Detection>>>> = per_device
            .into_iter()
            .map(|r| r.map(Vec::into_iter))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(frames.len());
        for b in 0..batches.len() {
            out.extend(per_device[b % n].next().expect("one result per batch"));
        }
        Ok(out)
    }

    /// Runs `frames` as one batch on device `replica` (an index into [`Self::device_names`]).
    pub fn detect_on(
        &self,
        replica: usize,
        frames: &[&Frame],
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        self.run_batch(&self.replicas[replica], frames)
    }

    fn run_batch(
        &self,
        replica: &Replica,
        frames: &[&Frame],
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        let spec = &self.spec;
        tch::no_grad(|| {
            let (input, letterboxes) =
                letterbox_batch(frames, spec.input_width, spec.input_height, replica.device)?;
            if let (Some(top_k), Some(method)) = (replica.heads_top_k, spec.adapter.heads_method())
            {
                let heads = tensors(replica.module.method_is(method, &[IValue::Tensor(input)])?);
                return spec.adapter.decode_heads(
                    spec,
                    &heads,
                    top_k,
                    &letterboxes,
                    self.score_threshold,
                );
            }
            let output = replica
                .module
                .forward_ts(&[input])?
                .f_to_kind(Kind::Float)?;
            let mut detections =
                spec.adapter
                    .decode(spec, &output, &letterboxes, self.score_threshold)?;
            describe_faces(
                &replica.module,
                replica.device,
                spec,
                frames,
                &mut detections,
            )?;
            Ok(detections)
        })
    }
}

/// `Some(k)` when `module` has its adapter's heads method and it answers a zero frame with
/// tensors, `k` being the rows `forward` returns per frame; `None` otherwise (any failure here
/// just means `forward` is used, and `forward`'s own check reports real problems).
fn heads_top_k(spec: &ModelSpec, module: &CModule) -> Option<usize> {
    let method = spec.adapter.heads_method()?;
    let (w, h) = (spec.input_width as i64, spec.input_height as i64);
    tch::no_grad(|| {
        let input = Tensor::f_zeros([1, h, w, 3], (Kind::Float, Device::Cpu)).ok()?;
        let rows = module.forward_ts(&[&input]).ok()?.size();
        let heads = tensors(module.method_is(method, &[IValue::Tensor(input)]).ok()?);
        (rows.len() == 3 && heads.len() == 2).then(|| rows[1] as usize)
    })
}

/// The tensors of a method's result (a tuple or list of them, or one).
pub fn tensors(value: IValue) -> Vec<Tensor> {
    match value {
        IValue::Tensor(t) => vec![t],
        IValue::TensorList(ts) => ts,
        IValue::Tuple(vs) | IValue::GenericList(vs) => vs
            .into_iter()
            .filter_map(|v| match v {
                IValue::Tensor(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// libtorch errors carry a C++ backtrace after the first line; users need only the message.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_string()
}
