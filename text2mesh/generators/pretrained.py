"""Loading diffusers models (a VQGAN's ``VQModel``, a diffusion ``UNet2DModel``) from a folder or a
Hugging Face hub id, with the project's offline behaviour: a hub id that is not cached fails within
seconds, in one line saying what to pass instead, when ``HF_HUB_OFFLINE`` is set or the hub cannot
be reached (the checks of :mod:`text2mesh.guidance.clip`'s loader)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, first_line

__all__ = ["file_stamp", "frozen_pretrained", "load_renamed", "read_checkpoint", "require_cached"]


def file_stamp(spec: str | Path) -> int | None:
    """When the local file or folder ``spec`` last changed (ns; None: not a local path, e.g. a hub
    id), so that a cache of loaded models keyed on it reloads a model replaced on disk."""
    path = Path(spec).expanduser()
    if not path.exists():
        return None
    return max(p.stat().st_mtime_ns for p in (path, *(path.iterdir() if path.is_dir() else ())))


def require_cached(spec: str, what: str, way_out: str, filenames: Sequence[str] = ("config.json",)) -> None:
    """ConfigError unless hub id ``spec`` has one of ``filenames`` cached or can be downloaded now.

    Args:
        spec: a hub id (``owner/name``).
        what: the model's kind in the message ("VQGAN", "diffusion model").
        way_out: what to pass instead, e.g. "a local folder or text2mesh-tiny-vqgan".
        filenames: the files that show the model is in the cache (any of them).
    """
    from ..guidance import clip as hub

    if any(hub.hf_cached_file(spec, name, None) is not None for name in filenames):
        return
    if hub.env_offline():
        raise ConfigError(f"{what} {spec} is not cached and HF_HUB_OFFLINE is set; download it on a connected "
                          f"machine, or pass {way_out}")
    if not hub.reachable(hub.HF_HOST):
        raise ConfigError(f"{what} {spec} is not cached and {hub.HF_HOST} cannot be reached; download it on a "
                          f"connected machine, or pass {way_out}")


def frozen_pretrained(cls, source: str | Path, what: str, way_out: str, **kwargs):
    """``cls.from_pretrained(source, **kwargs)`` in eval mode without gradients; ConfigError in one
    line when it cannot be loaded (hub, network and file errors alike)."""
    try:
        model = cls.from_pretrained(source, low_cpu_mem_usage=False, **kwargs)
    except Exception as exc:  # noqa: BLE001 - hub, network and file errors all end here
        raise ConfigError(f"cannot load {what} {source} ({first_line(exc, 160)}); download it on a connected machine, "
                          f"or pass {way_out}") from None
    return model.eval().requires_grad_(False)


def read_checkpoint(path: Path, what: str, *, weights_only: bool = True) -> Any:
    """``torch.load`` of a checkpoint file on the CPU; ConfigError in one line for a file it cannot read."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise ConfigError(f"cannot read {what} {path}: {first_line(exc, 200)}") from None


def load_renamed(model, state: dict, mismatch: str, fix: str):
    """``model`` (frozen, eval mode) with a state dict already renamed to its names, in one load:
    wrong shapes, missing and unexpected names are all a ConfigError starting ``mismatch``
    (e.g. "model.ckpt does not match model.yaml") and, for names, ending with ``fix``."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise ConfigError(f"{mismatch}: {lines[min(1, len(lines) - 1)].strip()}") from None
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise ConfigError(f"{mismatch} ({len(missing)} weights missing, {len(unexpected)} unexpected, e.g. {first}); "
                          f"{fix}")
    return model.eval().requires_grad_(False)
