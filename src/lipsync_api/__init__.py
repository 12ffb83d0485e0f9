"""lipsync-api: a self-hosted lipsync generation service speaking the sync.so v2 API."""

__version__ = "0.1.0"
