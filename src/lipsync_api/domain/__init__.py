"""Pure domain logic: no FastAPI, no SQL, no PyAV."""
