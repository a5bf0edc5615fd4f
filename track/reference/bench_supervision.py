"""The reference's speed for track/benches/tracking.rs: supervision's ByteTrack over the scene in
the JSON file given (frames of boxes and scores), best of 3; prints frames/s."""

import json
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
import supervision as sv  # noqa: E402

frames = json.load(open(sys.argv[1]))
inputs = [
    sv.Detections(
        xyxy=np.array(f["boxes"], dtype=np.float32),
        confidence=np.array(f["scores"], dtype=np.float32),
        class_id=np.zeros(len(f["scores"]), dtype=int),
    )
    for f in frames
]
best = float("inf")
for _ in range(3):
    tracker = sv.ByteTrack()
    started = time.perf_counter()
    for detections in inputs:
        tracker.update_with_detections(detections)
    best = min(best, time.perf_counter() - started)
print(len(frames) / best)
