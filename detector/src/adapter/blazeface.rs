//! Faces: BlazeFace boxes with landmarks (`forward`), then per face a score and an embedding
//! from the model's `embed` method, run on square crops of the source frame (not of the
//! letterboxed input: a face 40 pixels wide there may be 200 in the frame, and the embedding
//! needs the detail).

use tch::{CModule, Device, IValue, Kind, Tensor};

use crate::nms::nms;
use crate::preprocess::Letterbox;
use crate::registry::FacesSpec;
use crate::{BoundingBox, Detection, DetectorError, Frame, ModelSpec};

const EXPECTED: &str = "[N, K, 5 + 2 × landmarks] (x1, y1, x2, y2, score, landmarks' x, y)";
const EXPECTED_EMBED: &str = "[M, 1 + embedding_size] (face score, embedding)";
/// Crops per `embed` call: bounds the memory a frame full of faces takes.
const EMBED_BATCH: usize = 64;

pub(super) fn decode(
    spec: &ModelSpec,
    output: &Tensor,
    letterboxes: &[Letterbox],
    score_threshold: f32,
) -> Result<Vec<Vec<Detection>>, DetectorError> {
    let landmarks = spec.faces.as_ref().map_or(0, |f| f.landmarks.len());
    let width = 5 + 2 * landmarks;
    let shape = output.size();
    if shape.len() != 3 || shape[2] != width as i64 || shape[0] != letterboxes.len() as i64 {
        return Err(bad_output(spec, shape, EXPECTED));
    }
    let rows: Vec<f32> = Vec::try_from(
        output
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Float)?
            .f_contiguous()?
            .f_view([-1])?,
    )?;
    let (iw, ih) = (spec.input_width as f32, spec.input_height as f32);
    let per_frame = (shape[1] as usize * width).max(1);
    Ok(rows
        .chunks_exact(per_frame)
        .zip(letterboxes)
        .map(|(frame_rows, lb)| {
            let (sw, sh) = (lb.src_width as f32, lb.src_height as f32);
            let candidates = frame_rows
                .chunks_exact(width)
                // A NaN score fails the comparison: dropped too.
                .filter(|r| r[4] >= score_threshold)
                .filter_map(|r| {
                    let bbox = lb.to_source(BoundingBox {
                        x1: r[0].clamp(0.0, iw),
                        y1: r[1].clamp(0.0, ih),
                        x2: r[2].clamp(0.0, iw),
                        y2: r[3].clamp(0.0, ih),
                    });
                    let points = r[5..]
                        .chunks_exact(2)
                        .map(|p| {
                            [
                                (p[0] / lb.scale).clamp(0.0, sw),
                                (p[1] / lb.scale).clamp(0.0, sh),
                            ]
                        })
                        .collect();
                    (bbox.area() > 0.0).then(|| Detection {
                        label: spec.labels[0].clone(),
                        class_id: 0,
                        score: r[4],
                        bbox,
                        track_id: None,
                        predicted: false,
                        landmarks: Some(points),
                        embedding: None,
                    })
                })
                .collect();
            nms(candidates, spec.nms_iou)
        })
        .collect())
}

/// Scores and embeds every face of a batch: a face whose crop scores below the model's
/// `min_face_score` is dropped, the others get their embedding. `detections[i]` belongs to
/// `frames[i]`, in `frame.source` pixels.
pub fn describe_faces(
    module: &CModule,
    device: Device,
    spec: &ModelSpec,
    frames: &[&Frame],
    detections: &mut [Vec<Detection>],
) -> Result<(), DetectorError> {
    let Some(faces) = &spec.faces else {
        return Ok(());
    };
    let mut crops = Vec::new();
    for (frame, dets) in frames.iter().zip(detections.iter()) {
        if dets.is_empty() {
            continue;
        }
        let image = frame_tensor(frame, device)?;
        for d in dets {
            crops.push(face_crop(&image, frame, &d.bbox, faces)?);
        }
    }
    if crops.is_empty() {
        return Ok(());
    }
    let mut answers: Vec<f32> = Vec::with_capacity(crops.len() * (1 + faces.embedding_size));
    for batch in crops.chunks(EMBED_BATCH) {
        let out = embed(module, spec, faces, Tensor::f_stack(batch, 0)?)?;
        answers.extend(Vec::<f32>::try_from(out.f_view([-1])?)?);
    }
    let mut rows = answers.chunks_exact(1 + faces.embedding_size);
    for dets in detections.iter_mut() {
        let taken = std::mem::take(dets);
        for mut d in taken {
            let row = rows.next().expect("one answer per crop");
            if row[0] >= faces.min_face_score {
                d.embedding = Some(row[1..].to_vec());
                dets.push(d);
            }
        }
    }
    Ok(())
}

/// Runs `embed` on one batch of crops and checks its answer: `[M, 1 + embedding_size]` on the
/// CPU. Also what [`check_embed`] runs at load time.
fn embed(
    module: &CModule,
    spec: &ModelSpec,
    faces: &FacesSpec,
    crops: Tensor,
) -> Result<Tensor, DetectorError> {
    let m = crops.size()[0];
    let out = crate::model::tensors(module.method_is("embed", &[IValue::Tensor(crops)])?);
    let [out] = &out[..] else {
        return Err(bad_output(spec, vec![out.len() as i64], EXPECTED_EMBED));
    };
    if out.size() != [m, 1 + faces.embedding_size as i64] {
        return Err(bad_output(spec, out.size(), EXPECTED_EMBED));
    }
    Ok(out
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?)
}

/// Runs `embed` on one grey crop, so that a face model without a working `embed` fails when
/// it is loaded rather than at its first face (load-time runs see no faces).
pub fn check_embed(
    module: &CModule,
    device: Device,
    spec: &ModelSpec,
) -> Result<(), DetectorError> {
    let Some(faces) = &spec.faces else {
        return Ok(());
    };
    let side = faces.crop_size as i64;
    let grey = Tensor::f_full([1, side, side, 3], 128.0, (Kind::Float, device))?;
    embed(module, spec, faces, grey).map(|_| ())
}

/// The frame as a `[H, W, 3]` float tensor on `device`.
fn frame_tensor(frame: &Frame, device: Device) -> Result<Tensor, DetectorError> {
    let (h, w) = (frame.height as i64, frame.width as i64);
    Ok(Tensor::f_from_slice(&frame.rgb)?
        .f_view([h, w, 3])?
        .f_to_device(device)?
        .f_to_kind(Kind::Float)?)
}

/// The square of side `crop_scale × max(w, h)` centred on the face, resized to `crop_size`
/// with an antialiased bilinear filter, zero where it leaves the frame: `[S, S, 3]`.
/// Only the part inside the frame is resized (then placed), so a face filling a 4K frame
/// costs no 4K-times-scale canvas.
fn face_crop(
    image: &Tensor,
    frame: &Frame,
    bbox: &BoundingBox,
    faces: &FacesSpec,
) -> Result<Tensor, DetectorError> {
    // Boxes are in source pixels; a frame scaled down on decoding has fewer.
    let fx = frame.width as f32 / frame.source.0.max(1) as f32;
    let fy = frame.height as f32 / frame.source.1.max(1) as f32;
    let (w, h) = (bbox.width() * fx, bbox.height() * fy);
    let side = (faces.crop_scale * w.max(h)).max(1.0);
    let (cx, cy) = (
        (bbox.x1 + bbox.x2) / 2.0 * fx,
        (bbox.y1 + bbox.y2) / 2.0 * fy,
    );
    let (left, top) = (cx - side / 2.0, cy - side / 2.0);
    let size = faces.crop_size as i64;
    let per_px = size as f32 / side;
    let crop = Tensor::f_zeros([size, size, 3], (Kind::Float, image.device()))?;
    let clip = |v: f32, max: u32| (v.round().max(0.0) as i64).min(max as i64);
    let (x0, x1) = (clip(left, frame.width), clip(left + side, frame.width));
    let (y0, y1) = (clip(top, frame.height), clip(top + side, frame.height));
    if x1 <= x0 || y1 <= y0 {
        return Ok(crop);
    }
    // Where the inside part lands in the crop, and its size there.
    let place =
        |v: i64, origin: f32| (((v as f32 - origin) * per_px).round() as i64).clamp(0, size);
    let (dx0, dx1) = (place(x0, left), place(x1, left));
    let (dy0, dy1) = (place(y0, top), place(y1, top));
    let (dw, dh) = ((dx1 - dx0).max(1), (dy1 - dy0).max(1));
    let (dx0, dy0) = (dx0.min(size - dw), dy0.min(size - dh));
    let part = image
        .f_narrow(0, y0, y1 - y0)?
        .f_narrow(1, x0, x1 - x0)?
        .f_permute([2, 0, 1])?
        .f_unsqueeze(0)?
        .f_internal_upsample_bilinear2d_aa([dh, dw], false, None, None)?
        .f_squeeze_dim(0)?
        .f_permute([1, 2, 0])?;
    // A view into `crop`: copying into it fills the crop.
    let mut window = crop.f_narrow(0, dy0, dh)?.f_narrow(1, dx0, dw)?;
    window.f_copy_(&part)?;
    Ok(crop)
}

fn bad_output(spec: &ModelSpec, shape: Vec<i64>, expected: &'static str) -> DetectorError {
    DetectorError::BadOutput {
        model: spec.name.clone(),
        adapter: "blazeface",
        shape,
        expected,
    }
}
