"""Shared helpers for the stylize tests: a tiny mesh, tiny settings, random tiny CLIP weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import trimesh
from clip_helpers import random_vit

from text2mesh.config import load_config
from text2mesh.guidance.clip import TINY_COLOUR, random_clip
from text2mesh.render import Renderer

# Small everything: renders, field, views, crops; no turntable; frequent checkpoints.
TINY_SETTINGS = {
    "render": {"resolution": 64},
    "field": {"width": 32, "n_frequencies": 16, "depth": 2, "head_depth": 1},
    "views": {"n_views": 2},
    "guidance": {"n_local_augs": 1},
    "mesh": {"max_edge": None},
    "optim": {"lr": 0.01, "snapshot_every": 2, "checkpoint_every": 2, "device": "cpu"},
    "output": {"final_resolution": 64, "turntable": False, "n_final_views": 2},
}

INPUT_SCALE = 3.0
INPUT_OFFSET = np.array([10.0, -2.0, 5.0])


def tiny_config(**optim):
    cfg = load_config("default", overrides=TINY_SETTINGS)
    for key, value in optim.items():
        setattr(cfg.optim, key, value)
    return cfg


def set_flags(settings: dict = TINY_SETTINGS) -> list[str]:
    """TINY_SETTINGS as ``--set key=value`` flags."""
    flags = []
    for section, values in settings.items():
        for key, value in values.items():
            flags += ["--set", f"{section}.{key}={'null' if value is None else value}"]
    return flags


def write_tiny_mesh(path: Path) -> Path:
    """A lumpy sphere (642 vertices) away from the origin and not unit-sized, as OBJ."""
    mesh = trimesh.creation.icosphere(subdivisions=3)
    mesh.vertices *= 1.0 + 0.1 * np.sin(3 * mesh.vertices[:, :1])
    mesh.vertices = mesh.vertices * INPUT_SCALE + INPUT_OFFSET
    mesh.export(path)
    return path


def tiny_clip():
    return random_vit(0)


def save_tiny_clip_weights(path: Path) -> Path:
    """Random weights of the tiny colour CLIP's architecture, which the CLI loads with
    ``--clip-model text2mesh-tiny-colour --clip-checkpoint path`` (whatever that architecture is)."""
    torch.save(random_clip(TINY_COLOUR).model.state_dict(), path)
    return path


def object_neighbour_difference(images: torch.Tensor, alpha: torch.Tensor) -> float:
    """Mean absolute difference of neighbouring object pixels, summed over channels: images
    [B,C,H,W], alpha [B,1,H,W] (pixels with alpha > 0.999 count as the object). Colour or
    shading variation at the smallest scale: stripes, blotches, spikes."""
    inside = (alpha > 0.999).float()
    pairs_x, pairs_y = inside[..., :, 1:] * inside[..., :, :-1], inside[..., 1:, :] * inside[..., :-1, :]
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().sum(1, keepdim=True) * pairs_x
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().sum(1, keepdim=True) * pairs_y
    return float((dx.sum() + dy.sum()) / (pairs_x.sum() + pairs_y.sum()))


class RecordingRenderer(Renderer):
    """A Renderer that keeps what each call drew: ``vertices`` [V, 3] and ``calls`` (the colours)."""

    def __init__(self):
        super().__init__()
        self.vertices = []
        self.calls = []

    def render(self, vertices, faces, cameras, colors, **kw):
        self.vertices.append(vertices.detach().clone())
        self.calls.append(colors.detach().clone())
        return super().render(vertices, faces, cameras, colors, **kw)


def run_cli(args, capsys) -> tuple[int, str, str]:
    """``text2mesh ARGS`` in-process: (exit code, stdout, stderr)."""
    from text2mesh.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err
