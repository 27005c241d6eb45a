"""Evaluation: metrics, classical baselines, the evaluation cases and the scoring of checkpoints."""
