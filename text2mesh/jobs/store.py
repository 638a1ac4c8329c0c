"""The job store: one folder holding a run folder per job and ``jobs.jsonl``, the record of each.

``jobs.jsonl`` has one JSON line per job (id, spec, status, attempt, start/end time, error line,
run folder, worker, last progress) and is rewritten atomically on every change of status, so a
reader (a gallery, a server, a rerun) never sees half a file; progress reports (every 2 s from
each worker) reach it at most every PROGRESS_SAVE_SECONDS, or with the next change of status (the
server reads progress from memory). Only the driver writes it; workers report to the driver.
Run folders travel between machines packed as tar archives (:func:`pack_run`, :func:`unpack_run`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunFolderError
from ..export.files import write_bytes_atomic
from .spec import JobSpec

JOBS_FILE = "jobs.jsonl"
STATUSES = ("queued", "running", "done", "failed", "cancelled")
PROGRESS_SAVE_SECONDS = 10.0


@dataclass
class JobRecord:
    """What the store knows of one job. status: one of STATUSES; attempt: attempts started so far;
    started/ended: Unix times (None: not yet); error: the last attempt's one-line error;
    run_dir: the job's run folder, relative to the store; progress: last reported
    {"step", "total", "loss"}."""

    id: str
    spec: JobSpec
    status: str = "queued"
    attempt: int = 0
    started: float | None = None
    ended: float | None = None
    error: str = ""
    run_dir: str = ""
    worker: str = ""
    progress: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "spec": self.spec.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        return cls(**{**data, "spec": JobSpec.from_dict(data["spec"])})


class JobStore:
    """A folder of jobs: ``jobs.jsonl`` and one run folder per job (named by the job's id)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.records: dict[str, JobRecord] = {}
        self.saved_at = -math.inf  # time.monotonic() of the last save

    @property
    def jobs_file(self) -> Path:
        return self.root / JOBS_FILE

    @classmethod
    def open(cls, root: str | Path) -> JobStore:
        """The store in ``root`` (created if missing); RunFolderError if ``root`` is unusable."""
        store = cls(root)
        if store.root.exists() and not store.root.is_dir():
            raise RunFolderError(f"output {store.root} is a file; give a folder with -o/--output")
        try:
            store.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create output folder {store.root}: {exc.strerror}") from None
        if store.jobs_file.is_file():
            store.records = {r.id: r for r in read_records(store.jobs_file)}
        return store

    def add(self, specs: list[JobSpec]) -> list[JobRecord]:
        """Records for ``specs``: existing ones kept (a job whose settings changed is refused),
        new ones queued."""
        out = []
        for spec in specs:
            record = self.records.get(spec.name)
            if record is not None and record.spec != spec:
                raise RunFolderError(
                    f"job {spec.name} in {self.root} was started with other settings; "
                    f"give it another name or use another -o/--output"
                )
            if record is None:
                record = JobRecord(spec.name, spec, run_dir=spec.name)
                self.records[spec.name] = record
            out.append(record)
        self.save()
        return out

    def run_path(self, record: JobRecord) -> Path:
        return self.root / record.run_dir

    def files(self, record: JobRecord) -> list[str]:
        """The job's run-folder files (relative, sorted), without files still being written."""
        run = self.run_path(record)
        if not run.is_dir():
            return []
        return sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))

    def update(self, job_id: str, **changes: Any) -> JobRecord:
        """Change a job's record and save the store."""
        record = self.records[job_id]
        for key, value in changes.items():
            setattr(record, key, value)
        self.save()
        return record

    def report_progress(self, job_id: str, progress: dict[str, float]) -> None:
        """Keep a job's latest progress; saved if the last save is PROGRESS_SAVE_SECONDS old (a
        batch of many jobs would otherwise rewrite the whole file several times a second)."""
        self.records[job_id].progress = progress
        if time.monotonic() - self.saved_at >= PROGRESS_SAVE_SECONDS:
            self.save()

    def save(self) -> None:
        lines = "".join(json.dumps(r.to_dict()) + "\n" for r in self.records.values())
        write_bytes_atomic(self.jobs_file, lines.encode())
        self.saved_at = time.monotonic()


def read_records(path: str | Path) -> list[JobRecord]:
    """The records of a ``jobs.jsonl``."""
    records = []
    for i, line in enumerate(Path(path).read_text().splitlines()):
        if not line.strip():
            continue
        try:
            records.append(JobRecord.from_dict(json.loads(line)))
        except (ValueError, TypeError, KeyError) as exc:
            raise RunFolderError(f"{path} line {i + 1} is not a job record ({exc}); was it edited by hand?") from None
    return records


def now() -> float:
    return round(time.time(), 3)


def pack_run(folder: str | Path) -> bytes:
    """A run folder as a gzipped tar archive (names relative to the folder)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(folder)))
    return buffer.getvalue()


def unpack_run(data: bytes, folder: str | Path) -> Path:
    """Write a packed run folder to ``folder``, replacing what was there only once the archive is
    fully extracted next to it (an interruption leaves the old folder or the new one, never half)."""
    folder = Path(folder)
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(partial, filter="data")
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder
