"""Where jobs run: local worker processes (the default) or Ray tasks, behind one interface.

An executor takes tasks (:meth:`Executor.submit`) and answers with events
(:meth:`Executor.next_event`): ``started``, ``done``, ``failed`` (with a one-line error),
``interrupted``. The driver (:mod:`text2mesh.jobs.batch`) decides what to run and what to
retry; executors only run. Neither Ray nor torch is imported here until an executor needs it.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Interrupted, Text2MeshError
from .spec import JobSpec
from .store import pack_run, unpack_run


@dataclass(frozen=True)
class Task:
    """One attempt at a job: its id, spec and run folder (on the driver's machine)."""

    job_id: str
    spec: JobSpec
    run_dir: Path


@dataclass(frozen=True)
class Event:
    """kind: started | progress | done | failed | interrupted; worker: who ran it (pid, or
    host:pid); progress: {"step", "total", "loss", "eta"} of a progress event."""

    kind: str
    job_id: str
    error: str = ""
    worker: str = ""
    progress: dict[str, float] | None = None


class Executor:
    """Runs tasks; see the module docstring."""

    name = ""

    def submit(self, task: Task) -> None:
        raise NotImplementedError

    def next_event(self, timeout: float) -> Event | None:
        """The next event, or None when nothing happened within ``timeout`` seconds."""
        raise NotImplementedError

    def cancel(self, job_id: str) -> bool:
        """Stop one job: drop it if not started (False: no event follows), or ask its running task
        to stop (True: an ``interrupted`` event follows)."""
        raise NotImplementedError

    def interrupt(self) -> list[str]:
        """Ask running tasks to stop (checkpointing where they can; their events follow) and drop
        the tasks not started yet; returns the dropped tasks' job ids."""
        return []

    def close(self) -> None:
        """Stop workers (after the tasks' events were read)."""

    def __enter__(self) -> Executor:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def error_line(exc: BaseException) -> str:
    """One line for a job's error: our own messages as they are, anything else with its type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, Text2MeshError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_task(runner, task: Task, send: Callable[[Event], None] | None = None) -> Event:
    """Run one task in this process; its outcome as an event (exceptions become ``failed``);
    ``send`` gets its progress events."""
    worker = str(os.getpid())
    on_progress = None
    if send is not None:
        def on_progress(values: dict[str, float]) -> None:
            send(Event("progress", task.job_id, worker=worker, progress=values))
    try:
        runner.run(task.spec, task.run_dir, on_progress=on_progress)
    except Interrupted as exc:
        return Event("interrupted", task.job_id, error_line(exc), worker)
    except KeyboardInterrupt:
        return Event("interrupted", task.job_id, "interrupted before the run started", worker)
    except Exception as exc:  # noqa: BLE001 - a job's failure is recorded, never fatal to the batch
        return Event("failed", task.job_id, error_line(exc), worker)
    return Event("done", task.job_id, "", worker)


def _log_as(job_id: str) -> None:
    """Warnings of this worker name the job they come from."""
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(f"text2mesh: %(levelname)s: [{job_id}] %(message)s"))


def _local_worker(conn, env: dict[str, str]) -> None:
    """A worker process: run the tasks the driver sends until it sends None or the pipe closes.

    It leaves the terminal's process group, so a Ctrl-C reaches the driver only, which passes
    exactly one SIGINT on (a second one would abort a run before it checkpoints).
    """
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    os.environ.update(env)
    from .runner import JobRunner

    runner = JobRunner()
    while True:
        try:
            task = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if task is None:
            return
        _log_as(task.job_id)
        try:
            conn.send(Event("started", task.job_id, worker=str(os.getpid())))
            event = run_task(runner, task, conn.send)
            conn.send(event)
        except OSError:  # the driver is gone; the run's checkpoint is on disk for the next one
            return
        if event.kind == "interrupted":
            return


class LocalExecutor(Executor):
    """Worker processes on this machine: one per visible GPU (pinned with CUDA_VISIBLE_DEVICES),
    else ``workers`` CPU workers. A worker that dies (killed, out of memory) fails its task with a
    one-line error and is replaced."""

    name = "local"

    def __init__(self, workers: int = 1, gpus: list[str] | None = None) -> None:
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        if gpus:
            slots = [{"CUDA_VISIBLE_DEVICES": gpu} for gpu in gpus]
        else:  # CPU workers share the cores instead of each starting a thread per core
            threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // max(1, workers)))
            slots = [{"OMP_NUM_THREADS": threads} for _ in range(max(1, workers))]
        self._slots: list[dict] = [{"env": env, "process": None, "conn": None, "task": None} for env in slots]
        self._queue: list[Task] = []
        self._events: list[Event] = []

    def _start(self, slot: dict) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_local_worker, args=(child, slot["env"]), daemon=True)
        process.start()
        child.close()
        slot.update(process=process, conn=parent, task=None)

    def _dispatch(self) -> None:
        for slot in self._slots:
            if not self._queue:
                return
            if slot["task"] is None:
                if slot["process"] is None or not slot["process"].is_alive():
                    self._start(slot)
                slot["task"] = self._queue.pop(0)
                slot["conn"].send(slot["task"])

    def submit(self, task: Task) -> None:
        self._queue.append(task)
        self._dispatch()

    def _receive(self, slot: dict) -> None:
        try:
            event = slot["conn"].recv()
        except (EOFError, OSError):
            self._lost(slot)
            return
        self._events.append(event)
        if event.kind not in ("started", "progress"):
            slot["task"] = None

    def _lost(self, slot: dict) -> None:
        """The worker died: fail its task, clean up, and start a new worker when one is needed."""
        process, task = slot["process"], slot["task"]
        process.join(timeout=5)
        code = process.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if task is not None:
            self._events.append(Event("failed", task.job_id, f"worker process {process.pid} died ({how})", str(process.pid)))
        slot.update(process=None, conn=None, task=None)

    def next_event(self, timeout: float) -> Event | None:
        from multiprocessing.connection import wait

        if not self._events:
            busy = [s for s in self._slots if s["task"] is not None]
            handles = {}
            for slot in busy:
                handles[slot["conn"]] = slot
                handles[slot["process"].sentinel] = slot
            for ready in wait(list(handles), timeout=timeout) if handles else []:
                slot = handles[ready]
                if slot["task"] is None:
                    continue
                if ready is slot["conn"] or slot["conn"].poll():
                    self._receive(slot)
                else:
                    self._lost(slot)
        self._dispatch()
        return self._events.pop(0) if self._events else None

    def cancel(self, job_id: str) -> bool:
        self._queue = [task for task in self._queue if task.job_id != job_id]
        for slot in self._slots:
            task, process = slot["task"], slot["process"]
            if task is not None and task.job_id == job_id and process is not None and process.is_alive():
                os.kill(process.pid, signal.SIGINT)
                return True
        return False

    def interrupt(self) -> list[str]:
        dropped = [task.job_id for task in self._queue]
        self._queue.clear()
        for slot in self._slots:
            if slot["task"] is not None and slot["process"] is not None and slot["process"].is_alive():
                os.kill(slot["process"].pid, signal.SIGINT)
        return dropped

    def close(self) -> None:
        for slot in self._slots:
            process = slot["process"]
            if process is None:
                continue
            if process.is_alive():
                try:
                    slot["conn"].send(None)
                except OSError:
                    pass
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            slot.update(process=None, conn=None, task=None)


def _ray_task(job_id: str, spec_data: dict, mesh: tuple[str, bytes] | None, packed: bytes | None,
              progress=None) -> dict:
    """A job as a Ray task on any node: the mesh and any earlier checkpoint travel with it, the
    finished run folder travels back packed (no shared filesystem needed); ``progress`` (a Ray
    queue) gets its progress events as it runs."""
    import socket

    from .runner import JobRunner

    spec = JobSpec.from_dict(spec_data)
    with tempfile.TemporaryDirectory(prefix="text2mesh-job-") as tmp:
        if mesh is not None:
            mesh_path = Path(tmp) / mesh[0]
            mesh_path.write_bytes(mesh[1])
            spec = JobSpec.from_dict({**spec_data, "mesh": str(mesh_path)})
        run_dir = Path(tmp) / "run"
        if packed is not None:
            unpack_run(packed, run_dir)
        send = progress.put_nowait if progress is not None else None
        event = run_task(JobRunner(), Task(job_id, spec, run_dir), send)
        worker = f"{socket.gethostname()}:{os.getpid()}"
        result = {"kind": event.kind, "error": event.error, "worker": worker, "packed": None}
        if run_dir.is_dir():
            result["packed"] = pack_run(run_dir)
        return result


class RayExecutor(Executor):
    """Each task a Ray task (``ray.init(address)``: ``auto`` joins a running cluster, None starts a
    local one), asking for one GPU when the cluster has GPUs; Ray retries tasks whose worker was
    lost (``max_retries``). cpus_per_task: the CPUs a task asks for (and the threads torch uses
    in it). The tasks' progress events reach the driver through a Ray queue (an actor of no CPU),
    as local workers' come through their pipes."""

    name = "ray"

    def __init__(self, address: str | None = None, retries: int = 1, num_cpus: int | None = None,
                 cpus_per_task: int = 1) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError('--ray needs Ray: pip install "ray>=2.30" (or pip install -e ".[ray]")') from None
        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None and num_cpus is not None:
                kwargs["num_cpus"] = num_cpus
            ray.init(address=address, **kwargs)
        gpus = ray.cluster_resources().get("GPU", 0)
        self._remote = ray.remote(num_cpus=cpus_per_task, num_gpus=1 if gpus else 0, max_retries=retries)(_ray_task)
        from ray.util.queue import Queue

        self._progress = Queue(actor_options={"num_cpus": 0})
        self._pending: dict[Any, Task] = {}
        self._events: list[Event] = []

    def submit(self, task: Task) -> None:
        mesh = None
        if task.spec.mesh is not None:
            mesh = (Path(task.spec.mesh).name, Path(task.spec.mesh).read_bytes())
        packed = pack_run(task.run_dir) if (task.run_dir / "checkpoint.pt").is_file() else None
        ref = self._remote.remote(task.job_id, task.spec.to_dict(), mesh, packed, self._progress)
        self._pending[ref] = task
        self._events.append(Event("started", task.job_id, worker="ray"))

    def next_event(self, timeout: float) -> Event | None:
        if not self._events:
            self._receive_progress()
        if not self._events and self._pending:
            ready, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=timeout)
            self._receive_progress()  # a task's last report was queued before it returned: it goes first
            for ref in ready:
                task = self._pending.pop(ref)
                self._events.append(self._collect(ref, task))
        return self._events.pop(0) if self._events else None

    def _receive_progress(self) -> None:
        waiting = self._progress.qsize()
        if waiting:
            self._events.extend(self._progress.get_nowait_batch(waiting))

    def _collect(self, ref, task: Task) -> Event:
        try:
            result = self._ray.get(ref)
        except self._ray.exceptions.TaskCancelledError:
            return Event("interrupted", task.job_id, "cancelled")
        except self._ray.exceptions.RayError as exc:
            return Event("failed", task.job_id, f"ray: {error_line(exc)}")
        if result["packed"] is not None:
            unpack_run(result["packed"], task.run_dir)
        return Event(result["kind"], task.job_id, result["error"], result["worker"])

    def cancel(self, job_id: str) -> bool:
        for ref, task in self._pending.items():
            if task.job_id == job_id:
                self._ray.cancel(ref)
                return True
        return False

    def interrupt(self) -> list[str]:
        for ref in list(self._pending):
            self._ray.cancel(ref)
        return []

    def close(self) -> None:
        self._pending.clear()
        self._progress.shutdown()


def visible_gpus() -> list[str]:
    """CUDA device ids the local executor pins one worker to each (empty without CUDA)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def executor_kwargs(name: str, *, workers: int | None, ray_address: str | None, retries: int,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments of executor ``name`` from the user's flags: local workers (one per
    visible GPU when ``workers`` is None and there are GPUs, else ``workers`` or 1), or Ray's
    address and retries; ``extra`` adds executor-specific ones."""
    options = dict(extra or {})
    if name == "local":
        options.update(workers=workers or 1, gpus=visible_gpus() if workers is None else [])
    elif name == "ray":
        options.update(address=ray_address, retries=retries)
    return options


def make_executor(name: str, **options: Any) -> Executor:
    """An executor by name (``local`` or ``ray``) with its options."""
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name](**options)
