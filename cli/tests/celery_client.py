"""A plain Python Celery client of Argus's Rust workers: sends process_video by name to the
`processor` queue and waits for the video's result in the Redis result backend.

    python celery_client.py BROKER_URL RESULT_BACKEND VIDEO_ID
"""
import sys

from celery import Celery

broker, backend, video_id = sys.argv[1:4]
app = Celery("client", broker=broker, backend=backend)
result = app.send_task("process_video", args=[video_id], queue="processor")
video = result.get(timeout=300)
frames = video["frames"]
with_person = sum(1 for f in frames if any(d["label"] == "person" for d in f["detections"]))
print(f"frames={len(frames)} person_frames={with_person}")
