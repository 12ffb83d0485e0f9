"""Lip-sync one clip, then a batch, with the official client (pip install syncsdk) against lipsync-api.

Usage: SYNC_API_KEY=... LIPSYNC_SERVER=http://127.0.0.1:8000 python quickstart_syncsdk.py VIDEO_URL AUDIO_URL
"""

import json
import os
import sys
import time

from sync import Sync
from sync.common import Audio, Video

video_url, audio_url = sys.argv[1], sys.argv[2]
client = Sync(
    base_url=os.environ.get("LIPSYNC_SERVER", "http://127.0.0.1:8000"), api_key=os.environ["SYNC_API_KEY"]
)

# One generation: create it, then poll until it ends.
generation = client.generations.create(model="lipsync-2", input=[Video(url=video_url), Audio(url=audio_url)])
while generation.status in ("PENDING", "PROCESSING"):
    time.sleep(1)
    generation = client.generations.get(id=generation.id)
print("generation", generation.status, generation.output_url)

# A batch: one JSON line per request; validate it first with a dry run.
line = {
    "model": "lipsync-2",
    "input": [{"type": "video", "url": video_url}, {"type": "audio", "url": audio_url}],
}
batch_file = "".join(
    json.dumps({"request_id": f"clip_{n}", "endpoint": "/v2/generate", "payload": line}) + "\n"
    for n in range(2)
).encode()
print("dry run", client.batch.create(input=("batch.jsonl", batch_file), dry_run=True).status)
batch = client.batch.create(input=("batch.jsonl", batch_file))
while batch.status not in ("COMPLETED", "FAILED", "CANCELED"):
    time.sleep(1)
    batch = client.batch.get(id=batch.id)
print("batch", batch.status, batch.metrics.success_count, "succeeded; results at", batch.output_url)
