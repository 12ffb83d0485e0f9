"""The HTTP API: wire schemas and (later) the app, its routers and error mapping."""
