"""The baseline of Argus's CPU benchmark: the plain Python loop a user would write over the same
TorchScript model, tuned as its users tune it. Frames are read with OpenCV (one OpenCV thread,
so that it does not fight torch for the cores), letterboxed in NumPy exactly as Argus feeds the
model (RGB, scaled to fit 512x512 keeping the aspect ratio, top-left, zero padding; INTER_AREA
when shrinking, bilinear when growing), batched, and run with `torch.jit.load` under
`torch.inference_mode()` with THREADS intra-op threads.

    python python_baseline.py MODEL VIDEO THREADS BATCH [MAX_FRAMES]

Prints one JSON line: {"frames": N, "seconds": S, "fps": F}. The clock starts after the model
is loaded and warmed up (as `argus detect`'s frames/s does) and covers decoding, letterboxing
and inference.
"""
import json
import sys
import time

import cv2
import numpy as np
import torch

model_path, video = sys.argv[1], sys.argv[2]
threads, batch = int(sys.argv[3]), int(sys.argv[4])
max_frames = int(sys.argv[5]) if len(sys.argv) > 5 else None
SIZE = 512

torch.set_num_threads(threads)
cv2.setNumThreads(1)
model = torch.jit.load(model_path).eval()
with torch.inference_mode():
    for _ in range(3):
        model(torch.zeros(batch, SIZE, SIZE, 3))


def letterbox(bgr):
    h, w = bgr.shape[:2]
    scale = min(SIZE / w, SIZE / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    rgb = cv2.cvtColor(cv2.resize(bgr, (nw, nh), interpolation=interpolation), cv2.COLOR_BGR2RGB)
    boxed = np.zeros((SIZE, SIZE, 3), np.uint8)
    boxed[:nh, :nw] = rgb
    return boxed


capture = cv2.VideoCapture(video)
frames, pending = 0, []
started = time.perf_counter()
with torch.inference_mode():
    while max_frames is None or frames + len(pending) < max_frames:
        ok, bgr = capture.read()
        if not ok:
            break
        pending.append(letterbox(bgr))
        if len(pending) == batch:
            model(torch.from_numpy(np.stack(pending)).float())
            frames, pending = frames + len(pending), []
    if pending:
        model(torch.from_numpy(np.stack(pending)).float())
        frames += len(pending)
seconds = time.perf_counter() - started
print(json.dumps({"frames": frames, "seconds": seconds, "fps": frames / seconds}))
