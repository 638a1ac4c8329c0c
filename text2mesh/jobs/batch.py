"""The batch driver: run a manifest's jobs on an executor, recording each in the job store.

Rerunning the same batch skips finished jobs, continues interrupted ones from their checkpoints
and tries failed ones again; within one run a failed attempt is retried up to ``retries`` times.
A job's failure never stops the others. Ctrl-C asks running jobs to checkpoint, records them as
queued and stops; the same command continues.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Interrupted
from .executors import Event, Executor, Task, make_executor, visible_gpus
from .gallery import write_gallery
from .spec import JobSpec, jobs_from_mapping, load_manifest
from .store import JobRecord, JobStore, now

DRAIN_SECONDS = 120  # how long Ctrl-C waits for running jobs to checkpoint


def _specs(jobs: str | Path | Sequence[JobSpec | Mapping] | Mapping) -> list[JobSpec]:
    if isinstance(jobs, (str, Path)):
        return load_manifest(jobs)
    if isinstance(jobs, Mapping):
        return jobs_from_mapping(jobs, Path.cwd())
    if all(isinstance(j, JobSpec) for j in jobs):
        return list(jobs)
    return jobs_from_mapping({"jobs": [j.to_dict() if isinstance(j, JobSpec) else dict(j) for j in jobs]}, Path.cwd())


def _to_run(store: JobStore, records: list[JobRecord]) -> list[JobRecord]:
    """Records that need work: not done, or done but whose run folder went missing."""
    todo = []
    for record in records:
        if record.status == "done" and store.run_path(record).is_dir():
            continue
        if record.status != "queued":
            store.update(record.id, status="queued")
        todo.append(record)
    return todo


class _Report:
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


class _Driver:
    def __init__(self, store: JobStore, executor: Executor, retries: int, report: _Report) -> None:
        self.store = store
        self.executor = executor
        self.retries = retries
        self.report = report
        self.failures: dict[str, int] = {}
        self.outstanding: set[str] = set()

    def submit(self, record: JobRecord) -> None:
        self.outstanding.add(record.id)
        self.executor.submit(Task(record.id, record.spec, self.store.run_path(record)))

    def handle(self, event: Event) -> None:
        record = self.store.records[event.job_id]
        if event.kind == "progress":
            self.store.update(record.id, progress=event.progress or {})
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
        write_gallery(self.store)

    def wait(self, deadline: float | None = None) -> None:
        while self.outstanding and (deadline is None or time.monotonic() < deadline):
            event = self.executor.next_event(timeout=0.5)
            if event is not None:
                self.handle(event)


def batch(
    jobs: str | Path | Sequence[JobSpec | Mapping] | Mapping,
    out: str | Path,
    *,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    retries: int = 1,
    progress: bool = False,
    executor_options: dict[str, Any] | None = None,
) -> list[JobRecord]:
    """Run jobs into the job store ``out``; returns their records (in the manifest's order).

    Args:
        jobs: a manifest file (YAML or CSV), a manifest mapping (``defaults``/``jobs``/``grid``),
            or a list of JobSpec / job mappings.
        out: the job store folder (run folders, ``jobs.jsonl``, ``index.html``).
        executor: ``local`` (worker processes) or ``ray``.
        workers: local CPU workers (default 1; with CUDA GPUs visible, one per GPU instead).
        ray_address: for ``ray``: ``auto``, ``ray://host:port``, or None to start Ray locally.
        retries: attempts after a failure, per job, in this run.
        progress: a progress bar over jobs and a line per finished job (stderr).
        executor_options: more keyword arguments for the executor (e.g. ``num_cpus`` of a local Ray).
    Raises:
        ConfigError for a bad manifest (before anything runs); Interrupted on Ctrl-C, after the
        running jobs checkpointed.
    """
    if retries < 0:
        raise ConfigError("--retries must be 0 or more")
    specs = _specs(jobs)
    store = JobStore.open(out)
    records = store.add(specs)
    todo = _to_run(store, records)
    write_gallery(store)
    report = _Report(len(records), len(records) - len(todo), progress)
    options = dict(executor_options or {})
    if executor == "local":
        gpus = visible_gpus() if workers is None else []
        options.update(workers=workers or 1, gpus=gpus)
    elif executor == "ray":
        options.update(address=ray_address, retries=retries)
    try:
        if todo:
            with make_executor(executor, **options) as ex:
                driver = _Driver(store, ex, retries, report)
                _run(driver, todo)
    finally:
        report.close()
    write_gallery(store)
    return [store.records[s.name] for s in specs]


def _run(driver: _Driver, todo: list[JobRecord]) -> None:
    try:
        for record in todo:
            driver.submit(record)
        driver.wait()
    except KeyboardInterrupt:
        driver.outstanding.difference_update(driver.executor.interrupt())
        try:
            driver.wait(deadline=time.monotonic() + DRAIN_SECONDS)
        except KeyboardInterrupt:
            pass
        for job_id in driver.outstanding:
            driver.store.update(job_id, status="queued", error="interrupted; the next run continues it")
        write_gallery(driver.store)
        left = sum(r.status != "done" for r in driver.store.records.values())
        raise Interrupted(f"batch stopped with {left} jobs not done; run the same command again to continue") from None
