"""Bytes and small records the gateway and workers share in Redis, each under its own key.

Image bytes never travel inside RQ jobs (an 8 MiB image would cost ~10 MiB in the job hash
and outlive the job by RQ's long default failure TTL): they live here, under
`swintormer:input:<id>` / `swintormer:result:<id>` (and `swintormer:defocus-map:<id>`),
every key with an expiry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import redis

from service.schemas import ModelLimits

PREFIX = "swintormer"
# How long an Idempotency-Key is held by a submission whose job does not exist yet.
IDEMPOTENCY_CLAIM_S = 60


def input_key(job_id: str) -> str:
    return f"{PREFIX}:input:{job_id}"


def result_key(job_id: str) -> str:
    return f"{PREFIX}:result:{job_id}"


def defocus_map_key(job_id: str) -> str:
    return f"{PREFIX}:defocus-map:{job_id}"


def known_key(job_id: str) -> str:
    return f"{PREFIX}:known:{job_id}"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}:cancel:{job_id}"


def limits_key(queue_name: str) -> str:
    return f"{PREFIX}:model-limits:{queue_name}"


def idempotency_key(client_key: str) -> str:
    # hashed: the client's key is arbitrary text and may be long
    return f"{PREFIX}:idempotency:{hashlib.sha256(client_key.encode()).hexdigest()}"


@dataclass(frozen=True)
class IdempotencyRecord:
    """Which job an Idempotency-Key created, and a fingerprint of the request that made it."""

    job_id: str
    fingerprint: str


class Storage:
    """Typed access to the keys above on one Redis connection (bytes, not decoded)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection

    def put_input(self, job_id: str, data: bytes, ttl_s: int) -> None:
        self.connection.set(input_key(job_id), data, ex=ttl_s)

    def get_input(self, job_id: str) -> bytes | None:
        return self._get_bytes(input_key(job_id))

    def delete_input(self, job_id: str) -> None:
        self.connection.delete(input_key(job_id))

    def put_result(self, job_id: str, data: bytes, ttl_s: int) -> None:
        self.connection.set(result_key(job_id), data, ex=ttl_s)

    def get_result(self, job_id: str) -> bytes | None:
        return self._get_bytes(result_key(job_id))

    def put_defocus_map(self, job_id: str, data: bytes, ttl_s: int) -> None:
        """Store the estimated radius map's PNG beside the result, with the same TTL."""
        self.connection.set(defocus_map_key(job_id), data, ex=ttl_s)

    def get_defocus_map(self, job_id: str) -> bytes | None:
        return self._get_bytes(defocus_map_key(job_id))

    def remember_job(self, job_id: str, ttl_s: int, owner: str = "") -> None:
        """Record that `job_id` existed (so it reads 'expired' rather than unknown later) and
        which API key made it (its id, `service.gateway.deps.key_id`; "" without API keys)."""
        self.connection.set(known_key(job_id), owner.encode(), ex=ttl_s)

    def owner_of(self, job_id: str) -> str | None:
        """The key id that made `job_id`; None when no such job is remembered."""
        value = self._get_bytes(known_key(job_id))
        return None if value is None else value.decode()

    def is_known(self, job_id: str) -> bool:
        return bool(self.connection.exists(known_key(job_id)))

    def request_cancel(self, job_id: str, ttl_s: int) -> None:
        self.connection.set(cancel_key(job_id), b"1", ex=ttl_s)

    def is_cancel_requested(self, job_id: str) -> bool:
        return bool(self.connection.exists(cancel_key(job_id)))

    def claim_idempotency_key(
        self, client_key: str, record: IdempotencyRecord, ttl_s: int
    ) -> IdempotencyRecord | None:
        """Bind `client_key` to `record` unless already bound; return the existing binding.

        The claim first lives `IDEMPOTENCY_CLAIM_S` at most: a gateway that dies before the job
        exists leaves the key stuck for that long only. `confirm_idempotency_key` then gives it
        `ttl_s`.
        """
        value = json.dumps({"job_id": record.job_id, "fingerprint": record.fingerprint})
        claim_s = min(ttl_s, IDEMPOTENCY_CLAIM_S)
        if self.connection.set(idempotency_key(client_key), value, ex=claim_s, nx=True):
            return None
        existing = self._get_bytes(idempotency_key(client_key))
        if existing is None:  # expired between the two commands: claim again
            return self.claim_idempotency_key(client_key, record, ttl_s)
        fields = json.loads(existing)
        return IdempotencyRecord(fields["job_id"], fields["fingerprint"])

    def confirm_idempotency_key(self, client_key: str, ttl_s: int) -> None:
        """The key's job exists: keep the binding for `ttl_s`."""
        self.connection.expire(idempotency_key(client_key), ttl_s)

    def release_idempotency_key(self, client_key: str) -> None:
        self.connection.delete(idempotency_key(client_key))

    def put_model_limits(self, queue_name: str, limits: ModelLimits) -> None:
        """Publish what the workers on `queue_name` can run (the last worker to start wins:
        the workers of one queue serve one model)."""
        self.connection.set(limits_key(queue_name), limits.model_dump_json())

    def get_model_limits(self, queue_name: str) -> ModelLimits | None:
        value = self._get_bytes(limits_key(queue_name))
        return None if value is None else ModelLimits.model_validate_json(value)

    def _get_bytes(self, key: str) -> bytes | None:
        value = self.connection.get(key)
        assert value is None or isinstance(value, bytes)
        return value
