"""A long-running job service: jobs submitted at any time, run by an executor in the background.

``serve`` puts a web page and an HTTP API in front of it; it uses the same store, driver and
executors as ``batch``. One background thread owns the executor; callers only queue commands
(submit, cancel) and read records, under one lock. Starting a service on an existing store
continues its unfinished jobs.
"""

from __future__ import annotations

import copy
import queue
import threading
from typing import Any

from ..errors import ConfigError
from ..run import slug
from .driver import Driver
from .executors import executor_kwargs, make_executor
from .gallery import Gallery
from .spec import JobSpec
from .store import JobRecord, JobStore

UNFINISHED = ("queued", "running")


class JobService:
    """Jobs in the store at ``root``, run on ``executor`` (``local`` or ``ray``)."""

    def __init__(self, root, *, executor: str = "local", workers: int | None = None, ray_address: str | None = None,
                 retries: int = 1, executor_options: dict[str, Any] | None = None) -> None:
        self.store = JobStore.open(root)
        self.lock = threading.RLock()
        self._commands: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        options = executor_kwargs(executor, workers=workers, ray_address=ray_address, retries=retries,
                                  extra=executor_options)
        self._executor_name, self._options, self._retries = executor, options, retries
        self.driver: Driver | None = None
        self.gallery = Gallery(self.store)

    def start(self) -> JobService:
        """Start the executor and the background thread; unfinished jobs of the store continue."""
        self.driver = Driver(self.store, make_executor(self._executor_name, **self._options), self._retries,
                             gallery=self.gallery)
        with self.lock:
            for record in self.store.records.values():
                if record.status in UNFINISHED:
                    self.store.update(record.id, status="queued")
                    self._commands.put(("submit", record.id))
            self.gallery.write()
        self._thread = threading.Thread(target=self._loop, name="text2mesh-jobs", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        driver = self.driver
        while not self._stop.is_set():
            self._apply_commands()
            event = driver.executor.next_event(timeout=0.2)
            if event is not None:
                with self.lock:
                    driver.handle(event)

    def _apply_commands(self) -> None:
        while True:
            try:
                command, job_id = self._commands.get_nowait()
            except queue.Empty:
                return
            with self.lock:
                record = self.store.records[job_id]
                if command == "cancel":
                    self.driver.cancel(job_id)
                elif record.status == "queued":
                    self.driver.submit(record)

    def submit(self, spec: JobSpec) -> JobRecord:
        """Queue a job (its name made unique in the store); returns its record."""
        with self.lock:
            base = slug(spec.name or spec.prompt, 48)
            name, counter = base, 2
            while name in self.store.records:
                name, counter = f"{base}-{counter}", counter + 1
            spec = JobSpec.from_dict({**spec.to_dict(), "name": name})
            (record,) = self.store.add([spec])
            self.gallery.write()
        self._commands.put(("submit", record.id))
        return copy.deepcopy(record)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued or running job (a running one stops after checkpointing)."""
        with self.lock:
            record = self.store.records.get(job_id)
            if record is None:
                raise ConfigError(f"no job {job_id!r}")
            if record.status not in UNFINISHED:
                raise ConfigError(f"job {job_id} is {record.status}; only queued or running jobs can be cancelled")
        self._commands.put(("cancel", job_id))
        return self.record(job_id)

    def record(self, job_id: str) -> JobRecord | None:
        with self.lock:
            record = self.store.records.get(job_id)
            return None if record is None else copy.deepcopy(record)

    def records(self) -> list[JobRecord]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.store.records.values()]

    def stop(self, timeout: float = 120.0) -> None:
        """Stop: running jobs checkpoint and stay queued (a restarted service continues them)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self.driver.interrupt(timeout, lock=self.lock)
        self.driver.executor.close()
        self._thread = None
