"""The run folder: creation rules, atomic writes, loss history and checkpoints.

A run folder holds ``config.yaml`` (the resolved config), ``checkpoint.pt`` (field, optimizer,
step, random state, and the prepared base mesh so a run can be reloaded without its input),
``<mesh stem>_stylized.<fmt>`` exports in the input's frame, ``loss.csv`` and ``renders/``.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import RunFolderError, first_line
from .export.files import write_bytes_atomic

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.yaml"
LOSSES = "loss.csv"
RENDERS = "renders"
CHECKPOINT_FORMAT = 1


def slug(text: str, max_len: int = 40) -> str:
    """Lower-case file-name-safe version of ``text`` (``"Ash Ketchum!"`` -> ``"ash-ketchum"``)."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return out[:max_len].rstrip("-") or "run"


def default_run_dir(mesh_stem: str, prompt: str, *, root: Path | None = None, now: float | None = None) -> Path:
    """``runs/<mesh>-<prompt>-<YYYYmmdd-HHMMSS>`` under ``root`` (default: the working folder)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return (root or Path.cwd()) / "runs" / f"{slug(mesh_stem, 24)}-{slug(prompt)}-{stamp}"


class RunFolder:
    """Paths and files of one run folder (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.protected: list[Path] = []

    @classmethod
    def create(cls, path: str | Path, *, overwrite: bool = False, protect: Sequence[str | Path] = (),
               renders: bool = True) -> RunFolder:
        """Make (or, with ``overwrite``, reuse) a run folder.

        Args:
            path: the folder.
            overwrite: allow a non-empty folder (our files in it are replaced, others kept).
            protect: input files that must never be written (e.g. the input mesh).
            renders: make its ``renders/`` too (off for a folder of runs: variations, a contact sheet).
        Raises:
            RunFolderError: the folder is not empty and ``overwrite`` is off, the path is a
                file, or it cannot be created.
        """
        run = cls.check_new(path, overwrite=overwrite)
        try:
            (run.renders if renders else run.path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create output folder {run.path}: {exc.strerror}") from None
        run.protected = [Path(p).resolve() for p in protect]
        return run

    @classmethod
    def check_new(cls, path: str | Path, *, overwrite: bool = False) -> RunFolder:
        """What :meth:`create` checks, without creating anything (fail before expensive work)."""
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise RunFolderError(f"output {run.path} is a file; give a folder with -o/--output")
        if run.path.is_dir() and any(run.path.iterdir()) and not overwrite:
            raise RunFolderError(f"output folder {run.path} is not empty; choose another -o/--output or pass --overwrite")
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """An existing run folder with a checkpoint (for resume / load_run)."""
        run = cls(path)
        if run.config.is_file() and not run.checkpoint.is_file():
            raise RunFolderError(f"{run.path} has no {CHECKPOINT} to continue or reload from (a picture of imagine's "
                                 "diffusion generator keeps none); give a folder written by text2mesh stylize or imagine")
        if not run.checkpoint.is_file() or not run.config.is_file():
            raise RunFolderError(f"{run.path} is not a run folder (no {CHECKPOINT} and {CONFIG}); give a folder written by text2mesh stylize or imagine")
        run.renders.mkdir(exist_ok=True)
        return run

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def losses(self) -> Path:
        return self.path / LOSSES

    @property
    def renders(self) -> Path:
        return self.path / RENDERS

    def output(self, name: str) -> Path:
        """A path in the folder for a file the run writes; refuses protected (input) files."""
        path = self.path / name
        if path.resolve() in self.protected:
            raise RunFolderError(f"refusing to overwrite the input {path}; choose another -o/--output")
        return path

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
        write_bytes_atomic(self.checkpoint, buffer.getvalue())

    def load_checkpoint(self) -> dict[str, Any]:
        import torch

        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt files
            raise RunFolderError(f"cannot read {self.checkpoint}: {first_line(exc, 200)}") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise RunFolderError(f"{self.checkpoint} is not a text2mesh checkpoint of this version")
        return state

    def write_losses(self, losses: Sequence[float], parts: Sequence[dict[str, float]]) -> None:
        """``loss.csv``: one row per iteration (1-based), total loss and each term."""
        names = sorted({k for p in parts for k in p})
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["iteration", "loss", *names])
        for i, loss in enumerate(losses):
            row = parts[i] if i < len(parts) else {}
            writer.writerow([i + 1, f"{loss:.6f}", *(f"{row[k]:.6f}" if k in row else "" for k in names)])
        write_bytes_atomic(self.losses, text.getvalue().encode())


def read_losses(path: str | Path) -> list[float]:
    """The total-loss column of a ``loss.csv``."""
    with open(path, newline="") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]
