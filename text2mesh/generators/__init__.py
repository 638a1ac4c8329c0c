"""The 2D generators: what paints the picture of ``text2mesh imagine``, one module each.

A generator module holds:

- a :class:`~text2mesh.generators.base.Canvas` subclass: an ``nn.Module`` whose
  ``parameters()`` the optimization loop moves, whose ``texture((H, W), progress)`` draws the
  picture ([3, H, W] in [0, 1], differentiable) and whose ``state_dict()`` (the parameters and
  the ``init`` image buffer) is what a checkpoint holds;
- ``build(cfg, init, generator) -> Canvas``: the run's canvas from its config (``init``: a
  [3, H, W] init image in [0, 1] or None; ``generator``: the CPU random source of its starting
  parameters), raising ConfigError for bad settings;
- ``LR``: its Adam learning rate when ``imagine.lr`` is not set.

Cheap checks of a generator's settings (a model named, diffusion's step rules) live apart, in the
torch-free :mod:`~text2mesh.generators.settings`, keyed by the generator's name, so the command
line answers them before torch loads.

A sampler generator (:mod:`~text2mesh.generators.diffusion`) optimizes nothing: instead of a
Canvas, ``build`` and ``LR`` its module holds ``SAMPLER = True`` and the sampling function that
:mod:`text2mesh.imaging` runs step by step (:func:`is_sampler` tells them apart).

To add a generator: write one module here with a Canvas subclass, ``LR`` and
``build(cfg, init, generator)``, and add one entry to :data:`REGISTRY`.

The generators: :mod:`~text2mesh.generators.field` (the style field over the picture plane),
:mod:`~text2mesh.generators.pixels` (a colour-grid pyramid, bicubically upsampled),
:mod:`~text2mesh.generators.strokes` (brush strokes drawn by
:mod:`~text2mesh.generators.brush`), :mod:`~text2mesh.generators.vqgan` (a VQGAN's decoded
latent codes) and :mod:`~text2mesh.generators.diffusion` (CLIP-guided sampling of a diffusion
model; :mod:`~text2mesh.generators.guided` maps guided-diffusion checkpoints onto it). :mod:`~text2mesh.generators.scene` holds the flat grid scene ``imagine``
renders a canvas through.

A module is imported when its generator is first used, so this package loads without torch
(the command line lists :data:`GENERATORS` in its help) and diffusers loads only for vqgan and
diffusion.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor

    from ..config import Config
    from .base import Canvas

__all__ = ["CANVAS_SEED_OFFSET", "GENERATORS", "REGISTRY", "build_canvas", "check_generator", "generator_module",
           "is_sampler"]

# The generators by name: the module (in this package) holding each one's Canvas and build().
REGISTRY = {"field": "field", "pixels": "pixels", "strokes": "strokes", "vqgan": "vqgan", "diffusion": "diffusion"}
GENERATORS = tuple(REGISTRY)
CANVAS_SEED_OFFSET = 0


def generator_module(name: str) -> ModuleType:
    """The module of generator ``name`` (imported on first use); ConfigError for an unknown name."""
    module = REGISTRY.get(name)
    if module is None:
        raise ConfigError(f"unknown generator {name!r}; use one of {', '.join(GENERATORS)}")
    return importlib.import_module(f".{module}", __name__)


def is_sampler(name: str) -> bool:
    """Whether generator ``name`` samples its picture (diffusion) rather than optimizing a Canvas."""
    return bool(getattr(generator_module(name), "SAMPLER", False))


def check_generator(cfg: Config) -> None:
    """ConfigError for an unknown ``imagine.generator`` or 2D settings that cannot run
    (:mod:`~text2mesh.generators.settings`); imports no generator, so no torch."""
    from .settings import check_settings

    if cfg.imagine.generator not in REGISTRY:
        raise ConfigError(f"unknown generator {cfg.imagine.generator!r}; use one of {', '.join(GENERATORS)}")
    check_settings(cfg)


def build_canvas(cfg: Config, *, init: Tensor | None = None) -> Canvas:
    """The run's canvas, initialized from ``cfg.optim.seed`` (CPU).

    Args:
        cfg: ``imagine.generator`` picks the generator (:data:`REGISTRY`); ``field`` /
            ``imagine`` / ``render`` hold its settings.
        init: [3, H, W] init image in [0, 1], or None.
    """
    import torch

    if is_sampler(cfg.imagine.generator):
        raise ConfigError(f"the {cfg.imagine.generator} generator samples its picture: it has no canvas to build")
    build = generator_module(cfg.imagine.generator).build
    return build(cfg, init, torch.Generator().manual_seed(cfg.optim.seed + CANVAS_SEED_OFFSET))
