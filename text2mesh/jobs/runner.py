"""Run one job in this process: a fresh run, or the continuation of its run folder's checkpoint.

A :class:`JobRunner` lives as long as its worker process and keeps the CLIP models it loaded,
so a worker that runs many jobs with one model loads it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..optimize import Callback
from ..run import CHECKPOINT, CONFIG
from .spec import JobSpec

ProgressSink = Callable[[dict[str, float]], None]


class ProgressReport(Callback):
    """Calls ``sink({"step", "total", "loss", "eta", "start"})`` at most every ``every`` seconds
    and at the end (eta: seconds left at the run's pace so far; start: the step this attempt
    began at, > 0 when it continued a checkpoint)."""

    def __init__(self, sink: ProgressSink, every: float = 2.0) -> None:
        self.sink = sink
        self.every = every
        self._start = self._last = 0.0
        self._first = 0

    def on_start(self, loop) -> None:
        self._start = self._last = time.monotonic()
        self._first = loop.step

    def _send(self, loop, loss: float) -> None:
        done = loop.step - self._first
        elapsed = time.monotonic() - self._start
        eta = elapsed / done * (loop.total - loop.step) if done else float("nan")
        self.sink({"step": loop.step, "total": loop.total, "loss": round(loss, 6), "eta": round(eta, 1),
                   "start": self._first})
        self._last = time.monotonic()

    def on_step(self, loop, loss: float, parts: dict[str, float]) -> None:
        if time.monotonic() - self._last >= self.every:
            self._send(loop, loss)

    def on_end(self, loop) -> None:
        self._send(loop, loop.losses[-1] if loop.losses else float("nan"))


class JobRunner:
    """Runs jobs one after another, reusing loaded CLIP models (keyed by name, tag, file, device)."""

    def __init__(self) -> None:
        self._clips: dict[tuple, Any] = {}

    def clip(self, cfg) -> Any:
        from ..api import resolve_device
        from ..guidance.clip import load_clip

        g = cfg.guidance
        device = resolve_device(cfg.optim.device)
        key = (g.clip_model, g.clip_pretrained, g.clip_checkpoint, str(device))
        if key not in self._clips:
            self._clips[key] = load_clip(g.clip_model, g.clip_pretrained, g.clip_checkpoint, device=device)
        return self._clips[key]

    def run(self, spec: JobSpec, run_dir: str | Path, *, progress: bool = False,
            on_progress: ProgressSink | None = None) -> Path:
        """Run ``spec`` into ``run_dir``, continuing from its checkpoint if it has one;
        ``on_progress`` gets the loop's progress (see :class:`ProgressReport`).

        Raises Text2MeshError subclasses for the job's own problems (bad mesh, bad override) and
        Interrupted after checkpointing on SIGINT/SIGTERM.
        """
        run_dir = Path(run_dir)
        cfg = spec.config()
        clip = self.clip(cfg)
        resumable = (run_dir / CHECKPOINT).is_file() and (run_dir / CONFIG).is_file()
        hooks = {"progress": progress, "callbacks": [ProgressReport(on_progress)] if on_progress else []}
        if spec.kind == "imagine":
            from ..imaging import imagine

            if resumable:
                return imagine(None, cfg, run_dir, clip=clip, resume=True, **hooks).run_dir
            return imagine(None, cfg, run_dir, clip=clip, overwrite=True, **hooks).run_dir
        from ..api import resume, stylize

        if resumable:
            return resume(run_dir, clip=clip, **hooks).run_dir
        return stylize(spec.mesh, None, cfg, run_dir, clip=clip, overwrite=True, **hooks).run_dir
