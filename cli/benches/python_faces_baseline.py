"""The baseline of Argus's photo-collection benchmark: the plain Python loop a user would write
over the same TorchScript face model (models/convert_faces.py), tuned as its users tune it:
`torch.jit.load`, `torch.inference_mode()`, every core as intra-op threads, photos decoded with
OpenCV (one thread). For each photo: letterbox to 256x256 (as Argus does), `forward`, score
threshold and NMS, then for each face the square crop of 1.5x its box from the photo, resized
to 224 with antialiasing, and `embed` (face check + embedding) on the photo's faces at once.

    python python_faces_baseline.py MODEL PHOTO_DIR THREADS [MAX_PHOTOS]

Prints one JSON line: {"photos": N, "faces": F, "seconds": S, "photos_per_s": P}. The clock
starts after the model is loaded and warmed up.
"""
import json
import os
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

model_path, photo_dir, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
max_photos = int(sys.argv[4]) if len(sys.argv) > 4 else None
SIZE, CROP, CROP_SCALE, THRESHOLD, NMS_IOU, FACE_CHECK = 256, 224, 1.5, 0.5, 0.3, 0.5

torch.set_num_threads(threads)
cv2.setNumThreads(1)
model = torch.jit.load(model_path).eval()
with torch.inference_mode():
    model(torch.zeros(1, SIZE, SIZE, 3))
    model.embed(torch.zeros(1, CROP, CROP, 3))

names = sorted(os.listdir(photo_dir))
if max_photos:
    names = names[:max_photos]


def letterbox(rgb):
    h, w = rgb.shape[:2]
    scale = min(SIZE / w, SIZE / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = np.zeros((SIZE, SIZE, 3), np.float32)
    canvas[:nh, :nw] = cv2.resize(rgb, (nw, nh), interpolation=interpolation)
    return canvas, scale


def nms(rows):
    rows = rows[rows[:, 4] >= THRESHOLD]
    rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    keep = []
    for r in rows:
        ok = True
        for k in keep:
            iw = max(min(r[2], k[2]) - max(r[0], k[0]), 0)
            ih = max(min(r[3], k[3]) - max(r[1], k[1]), 0)
            inter = iw * ih
            union = (r[2] - r[0]) * (r[3] - r[1]) + (k[2] - k[0]) * (k[3] - k[1]) - inter
            if union > 0 and inter / union > NMS_IOU:
                ok = False
                break
        if ok:
            keep.append(r)
    return keep


def crop(rgb, box):
    x1, y1, x2, y2 = box
    side = max(CROP_SCALE * max(x2 - x1, y2 - y1), 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top, s = int(round(cx - side / 2)), int(round(cy - side / 2)), max(int(round(side)), 1)
    h, w = rgb.shape[:2]
    square = np.zeros((s, s, 3), np.float32)
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(left + s, w), min(top + s, h)
    if sx1 > sx0 and sy1 > sy0:
        square[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = rgb[sy0:sy1, sx0:sx1]
    t = torch.from_numpy(square).permute(2, 0, 1)[None]
    return F.interpolate(t, size=(CROP, CROP), mode="bilinear", align_corners=False, antialias=True)[0].permute(1, 2, 0)


faces = 0
started = time.perf_counter()
with torch.inference_mode():
    for name in names:
        bgr = cv2.imread(os.path.join(photo_dir, name), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
        canvas, scale = letterbox(rgb)
        rows = model(torch.from_numpy(canvas)[None])[0].numpy()
        kept = nms(rows)
        if kept:
            crops = torch.stack([crop(rgb, r[:4] / scale) for r in kept])
            answers = model.embed(crops)
            faces += int((answers[:, 0] >= FACE_CHECK).sum())
seconds = time.perf_counter() - started
print(json.dumps({"photos": len(names), "faces": faces, "seconds": seconds,
                  "photos_per_s": len(names) / seconds}))
