#!/usr/bin/env bash
# Lip-sync one clip with curl against lipsync-api, then run a one-line batch.
# Usage: SYNC_API_KEY=... LIPSYNC_SERVER=http://127.0.0.1:8000 bash quickstart_curl.sh VIDEO_URL AUDIO_URL
set -euo pipefail
server=${LIPSYNC_SERVER:-http://127.0.0.1:8000}
body=$(printf '{"model": "lipsync-2", "input": [{"type": "video", "url": "%s"}, {"type": "audio", "url": "%s"}]}' "$1" "$2")

id=$(curl -sf -H "x-api-key: $SYNC_API_KEY" -H "Content-Type: application/json" -d "$body" "$server/v2/generate" | jq -r .id)
until status=$(curl -sf -H "x-api-key: $SYNC_API_KEY" "$server/v2/generate/$id" | jq -r .status) \
      && [[ $status != PENDING && $status != PROCESSING ]]; do sleep 1; done
echo "generation $status"
curl -sf -o output.mp4 "$(curl -sf -H "x-api-key: $SYNC_API_KEY" "$server/v2/generate/$id" | jq -r .outputUrl)"

printf '{"request_id": "clip_1", "endpoint": "/v2/generate", "payload": %s}\n' "$body" > batch.jsonl
curl -sf -H "x-api-key: $SYNC_API_KEY" -F input=@batch.jsonl -F dry_run=true "$server/v2/batch" | jq -c .
batch=$(curl -sf -H "x-api-key: $SYNC_API_KEY" -F input=@batch.jsonl "$server/v2/batch" | jq -r .id)
until status=$(curl -sf -H "x-api-key: $SYNC_API_KEY" "$server/v2/batch/$batch" | jq -r .status) \
      && [[ $status == COMPLETED || $status == FAILED || $status == CANCELED ]]; do sleep 1; done
curl -sf -o results.jsonl "$(curl -sf -H "x-api-key: $SYNC_API_KEY" "$server/v2/batch/$batch" | jq -r .outputUrl)"
echo "batch $status: $(wc -l < results.jsonl) result line(s) in results.jsonl"
