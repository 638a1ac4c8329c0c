"""Loading diffusers models (a VQGAN's ``VQModel``, a diffusion ``UNet2DModel``) from a folder or a
Hugging Face hub id, with the project's offline behaviour: a hub id that is not cached fails within
seconds, in one line saying what to pass instead, when ``HF_HUB_OFFLINE`` is set or the hub cannot
be reached (the checks of :mod:`text2mesh.guidance.clip`'s loader)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError

__all__ = ["frozen_pretrained", "require_cached"]


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
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ConfigError(f"cannot load {what} {source} ({reason}); download it on a connected machine, "
                          f"or pass {way_out}") from None
    return model.eval().requires_grad_(False)
