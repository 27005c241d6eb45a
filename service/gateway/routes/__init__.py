"""One router per resource: deblur submissions, jobs, health (and metrics)."""
