"""The reference tracker: supervision's ByteTrack (PyPI, pinned in scripts/requirements.txt) run
sequentially over the detections of an Argus result document, and how far Argus's own tracks
(each detection's `track_id` in the same document) agree with it.

    python supervision_tracks.py RESULT.json [--activation 0.25] [--buffer 30] [--matching 0.8]

Prints one JSON object: the parameters, counts, and IDF1 taking supervision's tracks as ground
truth (detections it leaves without a track are not ground truth; ours on them count as false
positives), with the detections where the two disagree (up to 20) for a person to look at.
"""

import argparse
import collections
import json
import sys
import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment

warnings.filterwarnings("ignore")  # ByteTrack is deprecated in favour of the `trackers` package
import supervision as sv  # noqa: E402


def reference_tracks(doc, activation, buffer, matching):
    tracker = sv.ByteTrack(
        track_activation_threshold=activation,
        lost_track_buffer=buffer,
        minimum_matching_threshold=matching,
        frame_rate=doc["video"]["fps"],
        minimum_consecutive_frames=1,
    )
    by_index = {f["index"]: f["detections"] for f in doc["frames"]}
    ids = {}
    # Every frame of the video in order, a skipped one as a frame without detections.
    for index in range(doc["video"]["frame_count"]):
        dets = by_index.get(index, [])
        if dets:
            detections = sv.Detections(
                xyxy=np.array([d["box"] for d in dets], dtype=np.float32),
                confidence=np.array([d["score"] for d in dets], dtype=np.float32),
                class_id=np.array([d["class_id"] for d in dets], dtype=int),
                data={"i": np.arange(len(dets))},
            )
        else:
            detections = sv.Detections.empty()
            detections.data = {"i": np.array([], dtype=int)}
        tracked = tracker.update_with_detections(detections)
        for i, tid in zip(tracked.data.get("i", []), tracked.tracker_id):
            ids[(index, int(i))] = int(tid)
    return ids


def idf1(truth, ours):
    """IDF1 of `ours` against `truth` (dicts detection -> id)."""
    pairs = collections.Counter()
    for key, t in truth.items():
        if key in ours:
            pairs[(t, ours[key])] += 1
    t_ids = sorted({t for t, _ in pairs})
    o_ids = sorted({o for _, o in pairs})
    if not pairs:
        return 0.0, 0
    ti = {t: k for k, t in enumerate(t_ids)}
    oi = {o: k for k, o in enumerate(o_ids)}
    weight = np.zeros((len(t_ids), len(o_ids)))
    for (t, o), n in pairs.items():
        weight[ti[t], oi[o]] = n
    rows, cols = linear_sum_assignment(-weight)
    idtp = int(weight[rows, cols].sum())
    return 2 * idtp / (len(truth) + len(ours)), idtp


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("result")
    parser.add_argument("--activation", type=float, default=0.25)
    parser.add_argument("--buffer", type=int, default=30)
    parser.add_argument("--matching", type=float, default=0.8)
    args = parser.parse_args()
    with open(args.result) as f:
        doc = json.load(f)
    truth = reference_tracks(doc, args.activation, args.buffer, args.matching)
    ours = {}
    for f in doc["frames"]:
        for i, d in enumerate(f["detections"]):
            if d.get("track_id") is not None:
                ours[(f["index"], i)] = d["track_id"]
    score, idtp = idf1(truth, ours)
    disagreements = []
    for key in sorted(set(truth) | set(ours)):
        if (key in truth) != (key in ours):
            disagreements.append({"frame": key[0], "detection": key[1],
                                  "supervision": truth.get(key), "argus": ours.get(key)})
        if len(disagreements) >= 20:
            break
    json.dump({
        "params": vars(args),
        "detections": sum(len(f["detections"]) for f in doc["frames"]),
        "tracked_by_supervision": len(truth),
        "tracked_by_argus": len(ours),
        "supervision_tracks": len(set(truth.values())),
        "argus_tracks": len(set(ours.values())),
        "idtp": idtp,
        "idf1": score,
        "disagreements": disagreements,
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
