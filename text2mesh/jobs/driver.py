"""The driver between a job store and an executor, shared by ``batch`` and ``serve``."""

from __future__ import annotations

import contextlib
import time

from .executors import Event, Executor, Task
from .gallery import Gallery
from .store import JobRecord, JobStore, now


class Report:
    """One progress bar over jobs (done/total, ETA) and a line per finished job."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=done, desc="jobs", unit="job", disable=not enabled, dynamic_ncols=True)
        self.enabled = enabled

    def line(self, text: str) -> None:
        if self.enabled:
            self.bar.write(text)

    def finished(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class Driver:
    """Submits jobs to an executor and turns its events into the store's records: retries a
    failed attempt up to ``retries`` times, records an interrupted job as queued (or cancelled,
    when :meth:`cancel` asked for it), refreshes the gallery when a job ends."""

    def __init__(self, store: JobStore, executor: Executor, retries: int, report: Report | None = None,
                 gallery: Gallery | None = None) -> None:
        self.store = store
        self.gallery = gallery if gallery is not None else Gallery(store)
        self.executor = executor
        self.retries = retries
        self.report = report if report is not None else Report(0, 0, enabled=False)
        self.failures: dict[str, int] = {}
        self.outstanding: set[str] = set()
        self.cancelling: set[str] = set()

    def cancel(self, job_id: str) -> None:
        """Stop a job: a queued one at once, a running one after it checkpoints."""
        self.cancelling.add(job_id)
        if job_id in self.outstanding and self.executor.cancel(job_id):
            return  # its interrupted event follows
        self.outstanding.discard(job_id)
        self.store.update(job_id, status="cancelled", ended=now(), error="cancelled")
        self.gallery.write()

    def submit(self, record: JobRecord) -> None:
        self.outstanding.add(record.id)
        self.executor.submit(Task(record.id, record.spec, self.store.run_path(record)))

    def handle(self, event: Event) -> None:
        record = self.store.records[event.job_id]
        if event.kind == "progress":
            self.store.report_progress(record.id, event.progress or {})
            return
        if event.kind == "started":
            self.store.update(record.id, status="running", attempt=record.attempt + 1, started=now(), ended=None,
                              error="", worker=event.worker)
            return
        self.outstanding.discard(record.id)
        if event.kind == "done":
            self.store.update(record.id, status="done", ended=now(), error="", worker=event.worker or record.worker)
            took = f" in {record.ended - record.started:.0f} s" if record.started else ""
            self.report.line(f"done   {record.id}{took} -> {self.store.run_path(record)}")
            self.report.finished()
        elif event.kind == "interrupted" and record.id in self.cancelling:
            self.store.update(record.id, status="cancelled", ended=now(), error="cancelled")
        elif event.kind == "interrupted":
            self.store.update(record.id, status="queued", error="interrupted; the next run continues it")
        else:
            self.failures[record.id] = self.failures.get(record.id, 0) + 1
            if self.failures[record.id] <= self.retries:
                self.store.update(record.id, status="queued", error=event.error)
                self.report.line(f"retry  {record.id}: {event.error}")
                self.submit(record)
                return
            self.store.update(record.id, status="failed", ended=now(), error=event.error)
            self.report.line(f"failed {record.id}: {event.error}")
            self.report.finished()
        self.gallery.write()

    def wait(self, deadline: float | None = None, lock=None) -> None:
        """Handle events until no job is outstanding (or ``deadline``, a time.monotonic() value);
        ``lock`` (a context manager) is held while each event changes the store."""
        while self.outstanding and (deadline is None or time.monotonic() < deadline):
            event = self.executor.next_event(timeout=0.5)
            if event is not None:
                with lock or contextlib.nullcontext():
                    self.handle(event)

    def interrupt(self, seconds: float, lock=None) -> None:
        """Drop the jobs not started, ask the running ones to stop, and wait up to ``seconds`` for
        them to checkpoint (jobs still outstanding after that are left to the caller)."""
        with lock or contextlib.nullcontext():
            self.outstanding.difference_update(self.executor.interrupt())
        self.wait(deadline=time.monotonic() + seconds, lock=lock)
