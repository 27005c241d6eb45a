"""`DeblurWorker`: an RQ `SimpleWorker` whose process holds the warm model.

RQ's default `Worker` forks a child per job (the model would reload every job, and CUDA
cannot be used in a forked child); `SimpleWorker` runs jobs in its own process, so the model
loaded before `work()` stays warm. `perform_job` is not overridden (its signature changed
between RQ 2.12 and 3.0).

SimpleWorker sends no heartbeat while a job runs, so a job whose worker is killed stays
'started' until its registry entry expires: `job_timeout + abandoned_grace_s` here (RQ's
fixed +60 s otherwise). Then the next registry cleanup — by the gateway, at scrape time or
on a status read, or by any worker's maintenance — requeues it while it has retries left.
"""

from __future__ import annotations

from typing import Any

from rq.job import Job
from rq.worker import SimpleWorker

# An idle worker refreshes its registration this often (RQ: every worker_ttl - 15 s), so a
# killed idle worker leaves /readyz and the worker gauges within a minute (RQ's default: 7).
WORKER_TTL_S = 60


class DeblurWorker(SimpleWorker):
    """A SimpleWorker with a configurable grace before a silent job counts as abandoned."""

    abandoned_grace_s = 60

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("worker_ttl", WORKER_TTL_S)
        super().__init__(*args, **kwargs)

    def get_heartbeat_ttl(self, job: Job, *args: Any, **kwargs: Any) -> int:
        if job.timeout == -1:
            return int(super().get_heartbeat_ttl(job, *args, **kwargs))
        return int(job.timeout or self.queue_class.DEFAULT_TIMEOUT) + self.abandoned_grace_s
