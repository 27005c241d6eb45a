"""Training: the run configuration, the stages, the loop and the builder of a run."""
