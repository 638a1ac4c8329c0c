"""The batch driver: run a manifest's jobs on an executor, recording each in the job store.

Rerunning the same batch skips finished jobs, continues interrupted ones from their checkpoints
and tries failed ones again; within one run a failed attempt is retried up to ``retries`` times.
A job's failure never stops the others. Ctrl-C asks running jobs to checkpoint, records them as
queued and stops; the same command continues.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Interrupted
from .driver import Driver, Report
from .executors import executor_kwargs, make_executor
from .gallery import Gallery
from .spec import JobSpec, jobs_from_mapping, load_manifest
from .store import JobRecord, JobStore

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
    gallery = Gallery(store)
    gallery.write()
    report = Report(len(records), len(records) - len(todo), progress)
    options = executor_kwargs(executor, workers=workers, ray_address=ray_address, retries=retries,
                              extra=executor_options)
    try:
        if todo:
            with make_executor(executor, **options) as ex:
                driver = Driver(store, ex, retries, report, gallery)
                _run(driver, todo)
    finally:
        report.close()
    gallery.write()
    return [store.records[s.name] for s in specs]


def _run(driver: Driver, todo: list[JobRecord]) -> None:
    try:
        for record in todo:
            driver.submit(record)
        driver.wait()
    except KeyboardInterrupt:
        try:
            driver.interrupt(DRAIN_SECONDS)
        except KeyboardInterrupt:
            pass
        for job_id in driver.outstanding:
            driver.store.update(job_id, status="queued", error="interrupted; the next run continues it")
        driver.gallery.write()
        left = sum(r.status != "done" for r in driver.store.records.values())
        raise Interrupted(f"batch stopped with {left} jobs not done; run the same command again to continue") from None
