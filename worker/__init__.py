"""GPU workers: an RQ `SimpleWorker` that holds a warm model and runs tiled inference."""
