"""How well a stylized mesh matches its prompt: X-Mesh's multi-view expert score (MES).

MES = 100 x the mean cosine similarity between the prompt and 24 renders of the mesh (8 azimuths
x elevations -30, 0, +30 degrees, camera radius 2.5, white background, 224x224, the mesh on the
unit sphere), judged by a CLIP other than the one that stylized it (X-Mesh, ICCV 2023): by
default open_clip ``ViT-B-32`` / ``laion400m_e31``, offline the project's ``text2mesh-tiny-judge``.

Iterations to score (ITS): the first iteration, checked every 10, at which a run's own similarity
exceeded a threshold. It reuses what the run recorded at every iteration (no extra CLIP pass):
``loss.csv``'s full-view term, whose negative over the run's full-view augmentations is the
stylizing CLIP's cosine similarity of the view-averaged renders to the prompt.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError, RunFolderError
from .export.files import write_bytes_atomic
from .guidance.clip import TINY_MODEL

SCORE_FILE = "score.json"
DEFAULT_CLIP = ("ViT-B-32", "laion400m_e31")
AZIMUTHS = 8
ELEVATIONS_DEGREES = (-30.0, 0.0, 30.0)
RADIUS = 2.5
SIZE = 224
ITS_EVERY = 10
# Similarity a run must exceed for ITS, by the CLIP that stylized it: X-Mesh's 0.22 for real
# CLIPs; 0.4 for the tiny model, whose cosines run higher (bench_quality, the ensemble: colour
# prompts pass it by iteration 20 and plateau at 0.41-0.44, "a spiky object" reaches 0.33-0.39 and
# "blue and white stripes" 0.24 in the draft's 50 iterations, from -0.10 to 0.22 at the first).
ITS_THRESHOLDS = {TINY_MODEL: 0.4}
ITS_DEFAULT_THRESHOLD = 0.22


@dataclass(frozen=True)
class Score:
    """One target's score: ``score`` is 100 x mean cosine over the 24 views; ``iterations`` the
    run's iterations to score (None: not asked, not a run, or never reached)."""

    target: str
    prompt: str
    score: float
    clip: str
    views: int
    iterations: int | None = None


def view_angles() -> tuple[Tensor, Tensor]:
    """The 24 evaluation views: (azimuth [24], elevation [24]) in radians."""
    azimuth = torch.arange(AZIMUTHS, dtype=torch.float32) * (2 * math.pi / AZIMUTHS)
    elevation = torch.tensor([math.radians(e) for e in ELEVATIONS_DEGREES])
    return azimuth.repeat(len(elevation)), elevation.repeat_interleave(AZIMUTHS)


def render_views(vertices: Tensor, faces: Tensor, colors: Tensor | None, *, device="cpu") -> Tensor:
    """[24, 3, 224, 224] renders of a mesh on the unit sphere (grey where ``colors`` is None)."""
    from .render import Renderer
    from .views import cameras_from_angles

    azimuth, elevation = view_angles()
    cameras = cameras_from_angles(azimuth.to(device), elevation.to(device), radius=RADIUS, image_size=(SIZE, SIZE))
    vertices = vertices.to(device, torch.float32)
    colors = torch.full_like(vertices, 0.5) if colors is None else colors.to(device, torch.float32)
    with torch.no_grad():
        return Renderer().render(vertices, faces.to(device), cameras, colors, lighting="sh").images


def multiview_score(clip, images: Tensor, prompt: str) -> float:
    """100 x the mean cosine similarity of ``images`` [N, 3, H, W] to ``prompt``."""
    with torch.no_grad():
        image = F.normalize(clip.encode_images(images.to(clip.device)).float(), dim=-1)
        text = F.normalize(clip.encode_text([prompt]).float(), dim=-1)
    return float((image @ text.T).mean()) * 100


@dataclass(frozen=True)
class Target:
    """A mesh to score: vertices [V, 3] on the unit sphere, faces [F, 3], colours [V, 3] or None,
    the run's prompt (None for a bare mesh) and its run folder (None for a bare mesh)."""

    name: str
    vertices: Tensor
    faces: Tensor
    colors: Tensor | None
    prompt: str | None
    run_dir: Path | None


def run_prompt(path: str | Path) -> str | None:
    """A run folder's main prompt (None: a run without one, or a mesh file), from its config alone.

    Raises:
        ConfigError / RunFolderError: the path does not exist, or is a folder but not a run.
    """
    from .config import load_config
    from .run import CONFIG
    from .targets import main_prompt

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such run folder or mesh file")
    if not path.is_dir():
        return None
    if not (path / CONFIG).is_file():
        raise RunFolderError(f"{path} is not a run folder (no {CONFIG}); give a folder written by text2mesh stylize")
    cfg = load_config(path=path / CONFIG)
    return main_prompt(cfg) if cfg.prompts else None


def check_targets(paths: Sequence[str | Path], prompts: Sequence[str]) -> list[str | None]:
    """Every cheap check of the targets, before any mesh or CLIP is loaded.

    Returns:
        Each path's run prompt (None for a mesh file).
    Raises:
        ConfigError / RunFolderError: a path that is no run folder or file, or nothing to score
        a target against (a mesh file or a run without a prompt, and no PROMPT given).
    """
    found = [run_prompt(path) for path in paths]
    for path, prompt in zip(paths, found):
        if not prompts and prompt is None:
            what = "a run without a prompt" if Path(path).is_dir() else "a mesh file"
            raise ConfigError(f"{path} is {what}: give a PROMPT to score it against")
    return found


def load_target(path: str | Path, prompt: str | None = None) -> Target:
    """A run folder (its stylized mesh; ``prompt`` is its run prompt) or a mesh file (normalized,
    its vertex colours)."""
    from .api import load_run
    from .config import MeshConfig
    from .mesh import prepare_mesh

    path = Path(path)
    if path.is_dir():
        result = load_run(path)
        return Target(str(path), result.vertices, result.faces, result.colors, prompt, path)
    mesh = prepare_mesh(path, MeshConfig(max_edge=None, max_faces=None)).mesh
    return Target(str(path), mesh.vertices, mesh.faces, mesh.colors, None, None)


def iterations_to_score(run_dir: Path, threshold: float | None = None) -> int | None:
    """The first iteration (a multiple of 10) whose recorded similarity exceeds the threshold.

    Args:
        run_dir: a stylize run folder (its ``loss.csv`` and ``config.yaml``).
        threshold: None: ITS_THRESHOLDS for the run's CLIP, else 0.22.
    Returns:
        The iteration, or None when the run never got there.
    """
    from .config import load_config
    from .run import CONFIG, LOSSES

    cfg = load_config(path=run_dir / CONFIG)
    if threshold is None:
        threshold = ITS_THRESHOLDS.get(cfg.guidance.clip_model, ITS_DEFAULT_THRESHOLD)
    if not (run_dir / LOSSES).is_file():
        raise RunFolderError(f"{run_dir} has no {LOSSES}; iterations to score need a run's loss history")
    augmentations = max(1, cfg.guidance.n_augs)
    with open(run_dir / LOSSES, newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["iteration"])
            if step % ITS_EVERY == 0 and row.get("full") and -float(row["full"]) / augmentations > threshold:
                return step
    return None


def score_targets(
    paths: Sequence[str | Path],
    prompts: Sequence[str],
    clip,
    *,
    iterations: bool = False,
    threshold: float | None = None,
    write: bool = True,
) -> list[Score]:
    """Score every target against ``prompts`` (default: each run's own prompt).

    Writes ``score.json`` into each run folder (one entry per prompt) when ``write``.
    Raises:
        ConfigError / RunFolderError: see :func:`check_targets`.
    """
    targets = [load_target(path, prompt) for path, prompt in zip(paths, check_targets(paths, prompts))]
    clip_name = f"{clip.name} ({clip.source})"
    scores = []
    for target in targets:
        images = render_views(target.vertices, target.faces, target.colors, device=clip.device)
        its = iterations_to_score(target.run_dir, threshold) if iterations and target.run_dir else None
        rows = [
            Score(target.name, prompt, multiview_score(clip, images, prompt), clip_name, len(images), its)
            for prompt in (prompts or [target.prompt])
        ]
        if write and target.run_dir is not None:
            text = json.dumps([asdict(row) for row in rows], indent=2) + "\n"
            write_bytes_atomic(target.run_dir / SCORE_FILE, text.encode())
        scores += rows
    return scores


def table(scores: Sequence[Score], fmt: str = "markdown") -> str:
    """The scores as one table: ``markdown`` or ``csv``."""
    header = ["target", "prompt", "score", "iterations_to_score"]
    rows = [[s.target, s.prompt, f"{s.score:.2f}", "" if s.iterations is None else str(s.iterations)] for s in scores]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows([header, *rows])
        return out.getvalue()
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
