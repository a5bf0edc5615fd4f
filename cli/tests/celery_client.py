"""A plain Python Celery client of Argus's Rust workers: sends process_video by name to the
`processor` queue and waits for the video's result in the Redis result backend.

    python celery_client.py BROKER_URL RESULT_BACKEND VIDEO_ID [KWARGS_JSON]

Prints `frames=N person_frames=M` for a result, or `raised=ExceptionType: message` when the
video failed or was cancelled (get() raises, as Celery clients expect).
"""
import json
import sys

from celery import Celery

broker, backend, video_id = sys.argv[1:4]
kwargs = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
app = Celery("client", broker=broker, backend=backend)
result = app.send_task("process_video", args=[video_id], kwargs=kwargs, queue="processor")
print(f"task={result.id}", flush=True)
try:
    video = result.get(timeout=300)
except Exception as e:  # noqa: BLE001 - the type is what the test checks
    print(f"raised={type(e).__name__}: {e}", flush=True)
    sys.exit(0)
frames = video["frames"]
with_person = sum(1 for f in frames if any(d["label"] == "person" for d in f["detections"]))
print(f"frames={len(frames)} person_frames={with_person}")
