"""What the simulated later services read of the runtime's jobs and do to them beyond the
port: a job's record, a job written back from a backup, a finished job removed, and a
message handed to one of a job's agents."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from mn_api.adapters.memory.model import _Job, _judge, _type_of
from mn_api.domain.errors import InvalidTransitionError
from mn_api.domain.status import JobStatus

# How a core refuses to remove a job that has not ended (its Runtime.clear_job).
NOT_TERMINAL = "job_is_not_terminal"


class Records:
    """The later services' half of InMemoryRuntime (its state is the runtime's own)."""

    def job_record(self, job_id: str) -> _Job:
        """The job as the state store holds it; JobNotFoundError when it holds none."""
        return self._job(job_id)

    def has_job(self, job_id: str) -> bool:
        return self._store_up and job_id in self._jobs

    def unused_job_id(self, seed: str) -> str:
        """A job id made from `seed` (a graph or blueprint id) as the release makes them,
        and not in use."""
        now = self._clock()
        job_id = self._new_job_id(seed, now)
        while job_id in self._jobs:
            job_id = self._new_job_id(seed, now)
        return job_id

    def restore_job(
        self,
        job_id: str,
        manifest_json: str,
        payloads: Mapping[str, bytes],
        events: Iterable[Mapping[str, Any]],
    ) -> _Job:
        """A job written back under `job_id` with `events` as its history (as a core
        persists a restored backup: no submission, no events of its own), paused until it
        is resumed; resumed, it runs from its start. ManifestInvalidError for a manifest
        the core would refuse."""
        job = self._new_job(_judge(manifest_json), payloads, job_id)
        history = []
        for event in events:
            if self.release.version_field and "version" not in event:
                event = {**event, "version": 1}
            history.append(orjson.dumps(event))
        job.events = history
        if history:
            job.last_event = _type_of(history[-1])
        self._set_status(job, JobStatus.PAUSED)
        job.updated_at = self._now()
        self._evict()
        return job

    def forget_job(self, job_id: str) -> None:
        """Remove one finished job, its record and its history."""
        job = self._job(job_id)
        if not job.status.is_terminal:
            raise InvalidTransitionError(NOT_TERMINAL)
        del self._jobs[job_id]
        self._finished.pop(job_id, None)

    def send_message(
        self,
        job_id: str,
        target: str,
        kind: str,
        body: Any,
        *,
        message_id: str,
        message_class: str,
    ) -> None:
        """Hand `body` to the job's agent `target` as a message of type `kind` (delivered
        once the job runs, as its other messages are)."""
        job = self._job(job_id)
        self._enqueue(
            job,
            None,
            target,
            kind,
            body,
            0,
            self._clock(),
            message_class=message_class,
            message_id=message_id,
        )
        self._kick()
