"""What a run aims at: weighted text and image targets, parsed and checked without torch.

A run's targets are its main prompt (weight 1), extra ``"text:weight"`` prompts, image prompts
``"file[:weight]"`` and negatives (weight -1), all one mechanism. Everything here is cheap
(no torch, no CLIP), so commands check their targets before any heavy import or work.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .errors import ConfigError, ImageError

if TYPE_CHECKING:
    from .config import Config

__all__ = ["Target", "build_targets", "check_targets", "main_prompt", "prompt_spec", "read_image", "split_prompt",
           "split_weight", "with_prompts"]


@dataclass(frozen=True)
class Target:
    """One thing the renders should (weight > 0) or should not (weight < 0) look like.

    Attributes:
        kind: "text" or "image".
        value: the text, or the image file path.
        weight: multiplies the cosine similarity in the loss.
    """

    kind: Literal["text", "image"]
    value: str
    weight: float


def split_weight(spec: str, default: float = 1.0) -> tuple[str, float]:
    """``"text:0.5"`` -> ``("text", 0.5)``; a suffix that is not a number stays part of the text."""
    head, sep, tail = spec.rpartition(":")
    if sep:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return spec, default


def build_targets(
    prompt: str | None,
    prompts: Sequence[str] = (),
    image_prompts: Sequence[str] = (),
    negatives: Sequence[str] = (),
) -> list[Target]:
    """The weighted target list of a run.

    Args:
        prompt: the main prompt, weight 1 (None: only the other lists).
        prompts: ``"text"`` or ``"text:weight"``.
        image_prompts: ``"file"`` or ``"file:weight"``.
        negatives: texts, each with weight -1.
    Raises:
        ConfigError: a text is empty, or there is no target with a positive weight.
    """
    targets: list[Target] = []
    if prompt is not None:
        targets.append(Target("text", prompt, 1.0))
    targets += [Target("text", *split_weight(p)) for p in prompts]
    targets += [Target("image", *split_weight(p)) for p in image_prompts]
    targets += [Target("text", n, -1.0) for n in negatives]
    for target in targets:
        if not target.value.strip():
            raise ConfigError("a prompt is empty; give a text such as \"a vase made of wicker\"")
    if not any(t.weight > 0 for t in targets):
        raise ConfigError("no prompt to aim for; give a PROMPT (or --prompt/--image-prompt with a positive weight)")
    return targets


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as [H, W, 3] float32 in [0, 1] (alpha composited on white).

    Raises:
        ImageError: the file is missing or is not an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGBA")
            white = Image.new("RGBA", img.size, (255, 255, 255, 255))
            rgb = Image.alpha_composite(white, img).convert("RGB")
    except FileNotFoundError:
        raise ImageError(f"image prompt not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"cannot read image prompt {path}: {exc}") from None
    return np.asarray(rgb, dtype=np.float32) / 255.0


def split_prompt(prompt: str) -> list[str]:
    """The main prompt as ``config.prompts`` entries: one (weight 1), or, in the VQGAN-CLIP syntax
    ``"a castle:1 | fog:0.5 | blurry:-1"``, one per ``|``-separated part with its own weight
    (1 when it gives none; a negative one pushes away)."""
    if "|" not in prompt:
        return [prompt_spec(prompt)]
    return [part.strip() for part in prompt.split("|")]


def prompt_spec(prompt: str) -> str:
    """How the main prompt is stored in ``config.prompts`` (weight 1, unambiguous)."""
    text, _ = split_weight(prompt)
    return prompt if text == prompt else f"{prompt}:1"  # "ratio 3:2" must not read as weight 2


def with_prompts(
    cfg: Config,
    prompt: str | None,
    prompts: Sequence[str] = (),
    image_prompts: Sequence[str] = (),
    negatives: Sequence[str] = (),
) -> Config:
    """A copy of ``cfg`` whose targets are: ``prompt`` (replacing the preset's prompts when given;
    ``|`` separates weighted parts, see :func:`split_prompt`), then the extra weighted prompts,
    image prompts and negatives."""
    cfg = copy.deepcopy(cfg)
    base = split_prompt(prompt) if prompt is not None else list(cfg.prompts)
    cfg.prompts = base + list(prompts)
    cfg.image_prompts = list(cfg.image_prompts) + list(image_prompts)
    cfg.negatives = list(cfg.negatives) + list(negatives)
    return cfg


def main_prompt(cfg: Config) -> str:
    """The first text target (for folder names and captions)."""
    return split_weight(cfg.prompts[0])[0] if cfg.prompts else "stylized"


def check_targets(cfg: Config) -> list[Target]:
    """The config's weighted targets; raises ConfigError for empty prompts or no positive target,
    ImageError for an image prompt that cannot be read (before any folder or model is made)."""
    targets = build_targets(None, cfg.prompts, cfg.image_prompts, cfg.negatives)
    for target in targets:
        if target.kind == "image":
            read_image(target.value)
    return targets
