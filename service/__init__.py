"""The gateway: FastAPI app, upload validation, job storage in Redis. Never imports torch."""
