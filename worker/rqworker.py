"""`DeblurWorker`: an RQ `SimpleWorker` whose process holds the warm model, heartbeats while it
runs a job, and rides out Redis outages.

RQ's default `Worker` forks a child per job (the model would reload every job, and CUDA
cannot be used in a forked child); `SimpleWorker` runs jobs in its own process, so the model
loaded before `work()` stays warm. `perform_job` is not overridden (its signature changed
between RQ 2.12 and 3.0); `execute_job` calls it with RQ 3's arguments.

Heartbeats. `SimpleWorker` sends none while a job runs, so a worker killed mid-job went
unnoticed for `job_timeout + 60 s`. Here a thread refreshes the worker, the job and its
started-registry entry every `heartbeat_s` during a job, and the entry expires
`abandoned_grace_s` after the last one: a dead worker's job is found by the registry cleanups
(the gateway's scrapes and status reads, every worker's maintenance, `serve`'s supervisor) a
grace after one first saw it expired (`service.jobs.reap_abandoned`; RQ's own cleanup would
also take the jobs of live workers whose heartbeats a Redis outage held up) and retried at the
front of the queue (`Retry(enqueue_at_front=True)`). A dequeued copy of a job that has already
ended is dropped unrun.

Outages (`worker.outages.REDIS_OUTAGES`: down, restarting, read-only, full). RQ's loop quits on
most Redis errors ("unhandled exception, quitting"); here every step of the loop waits them out
instead. If the job's own bookkeeping failed, the job is put back at the front of the queue
once Redis takes writes again, without using up one of its retries (a rerun finds a result
already stored and does not restore the image again, see `worker.tasks`), unless it was
requeued or taken by another worker meanwhile (this worker alone cut off for two graces), and
never left behind in RQ's intermediate queue as well (see `_put_back`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.group import Group
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus
from rq.worker_registration import clean_worker_registry

from service.jobs import clean_registries
from worker.outages import REDIS_OUTAGES, wait_for_redis

log = logging.getLogger(__name__)


def idle_worker_ttl(abandoned_grace_s: int) -> int:
    """RQ's `worker_ttl` for a worker that must be heard from within `abandoned_grace_s`.

    An idle worker heartbeats every `worker_ttl - 15` s (RQ's rule): at most half the grace
    here (and at most 15 s), so a live idle worker is never taken for a dead one.
    """
    return 15 + max(1, min(15, abandoned_grace_s // 2))


_FINISHED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.STOPPED}


class DeblurWorker(SimpleWorker):
    """A SimpleWorker that heartbeats during jobs and never exits for a Redis outage."""

    abandoned_grace_s = 30
    heartbeat_s = 10.0
    redis_retry_max_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("worker_ttl", idle_worker_ttl(self.abandoned_grace_s))
        super().__init__(*args, **kwargs)

    def get_heartbeat_ttl(self, job: Job, *args: Any, **kwargs: Any) -> int:
        """The started-registry entry lives this long after each heartbeat."""
        return int(self.abandoned_grace_s)

    def execute_job(self, job: Job, queue: Queue) -> None:
        if job.get_status(refresh=False) in _FINISHED:
            # a copy requeued while its first worker still ran it (that worker cut off from
            # Redis alone for two graces, or two outages less than a heartbeat apart: see
            # service.jobs.reap_abandoned), and that worker finished it: running it again
            # would turn a job clients saw succeed back to 'running'
            log.warning("job %s: already %s, not run again", job.id, job.get_status())
            queue.intermediate_queue.remove(job.id)
            return
        execution: Execution | None = None
        try:
            execution = self.prepare_execution(job)
            with self._heartbeats(job, execution):
                self.perform_job(job, queue, execution)
        except REDIS_OUTAGES as error:
            log.warning("job %s: Redis outage during its bookkeeping: %s", job.id, error)
            self._put_back(job, queue, execution)
        self.set_state(WorkerStatus.IDLE)

    @contextlib.contextmanager
    def _heartbeats(self, job: Job, execution: Execution) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_s):
                try:
                    self.maintain_heartbeats(job, execution)
                except REDIS_OUTAGES as error:
                    log.warning("job %s: heartbeat failed: %s", job.id, error)

        thread = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _put_back(self, job: Job, queue: Queue, execution: Execution | None) -> None:
        """After an outage: requeue the job at the front, unless it ended, another worker took
        it, or it is waiting in the queue already.

        A job this worker dequeued but never marked started still has its entry in the
        intermediate queue, which is removed: RQ's maintenance fails (or retries) a job whose
        id stays there once it is no longer running, even after the job succeeded elsewhere.
        The other two cases arise when this worker alone was cut off from Redis for more than
        two graces: the job was reaped meanwhile and requeued (`service.jobs.reap_abandoned`),
        and requeueing it again would run it twice at once. If the worker is stopped before
        Redis returns, the job stays in the started registry and is retried like a dead
        worker's, two `abandoned_grace_s` after its last heartbeat.
        """
        if not wait_for_redis(self.connection, self.redis_retry_max_s, self._is_stopping):
            return
        try:
            job.refresh()
        except NoSuchJobError:
            return
        status = job.get_status(refresh=False)
        if status in _FINISHED:
            return
        with self.connection.pipeline() as pipeline:
            if execution is not None:
                self.cleanup_execution(job, pipeline, execution)
            pipeline.execute()
        if status == JobStatus.QUEUED:  # never marked started: this worker's dequeue is left
            queue.intermediate_queue.remove(job.id)
        if status == JobStatus.STARTED and job.worker_name not in (None, "", self.name):
            log.warning("job %s: taken over by %s during the outage", job.id, job.worker_name)
            return
        if status == JobStatus.QUEUED and self.connection.lpos(queue.key, job.id) is not None:
            log.warning("job %s: requeued during the outage already", job.id)
            return
        queue.enqueue_job(job, at_front=True)
        log.warning("job %s: put back at the front of the queue after the outage", job.id)

    def _is_stopping(self) -> bool:
        return bool(self._stop_requested)

    def _wait_out(self, step: str, error: Exception) -> None:
        log.warning("%s: Redis outage: %s", step, error)
        wait_for_redis(self.connection, self.redis_retry_max_s, self._is_stopping)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except REDIS_OUTAGES as error:
                self._wait_out("dequeue", error)

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)
        except REDIS_OUTAGES as error:
            self._wait_out("suspension check", error)

    def clean_registries(self) -> None:
        """RQ's registry maintenance, reaping abandoned jobs by `service.jobs.reap_abandoned`'s
        rule (an entry seen expired and not refreshed for a grace after) instead of RQ's (any
        expired entry), which would requeue every running job after a long Redis outage."""
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                clean_registries(queue, self.abandoned_grace_s)
                clean_worker_registry(queue)
                queue.intermediate_queue.cleanup(self, queue)
                queue.release_maintenance_lock()
        self.last_cleaned_at = now()  # type: ignore[assignment]  # RQ declares it as None

    def clean_group_registries(self) -> None:
        """RQ's maintenance of job groups, logged at DEBUG rather than RQ's INFO: at this
        worker's maintenance interval (15 s by default, `worker_maintenance_interval_s`) RQ's
        line filled an idle worker's log, four lines a minute. One worker per interval cleans,
        as in RQ: the lock expires just before the next tick."""
        lock_s = max(int(self.maintenance_interval) - 1, 1)
        if Group.acquire_maintenance_lock(self.connection, lock_s):
            log.debug("%s: cleaning group registries", self.name)
            Group.clean_registries(connection=self.connection)

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()
        except REDIS_OUTAGES as error:
            log.warning("maintenance skipped: Redis outage: %s", error)

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        while True:
            try:
                super().bootstrap(*args, **kwargs)
                return
            except REDIS_OUTAGES as error:
                self._wait_out("registration", error)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        try:
            super().heartbeat(timeout)
        except REDIS_OUTAGES as error:
            log.warning("worker heartbeat failed: %s", error)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().set_state(state, pipeline)
            return
        try:
            super().set_state(state)
        except REDIS_OUTAGES as error:
            log.warning("worker state not recorded: Redis outage: %s", error)

    def teardown(self) -> None:
        try:
            super().teardown()
        except REDIS_OUTAGES as error:
            log.warning("worker not unregistered (its registration expires): %s", error)
