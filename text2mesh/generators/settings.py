"""The 2D generators' cheap checks of their settings, without torch.

``check_settings`` answers a config a generator would refuse (a VQGAN or diffusion run with no
model, diffusion's ``--skip-steps`` rules, an empty ``--prompt-schedule`` entry) with a
:class:`~text2mesh.errors.ConfigError`. It reads the config only, so the command line calls it
before torch loads: a mistake costs a second, not the several seconds of importing torch; the
Python API's ``imagine`` calls it too (through ``generators.check_generator``), and vqgan's
``build`` once more for callers that build a canvas themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["DIFFUSION_NEEDED", "TINY_DIFFUSION", "TINY_VQGAN", "VQGAN_NEEDED", "check_generator_settings",
           "check_settings"]

TINY_VQGAN = "text2mesh-tiny-vqgan"
TINY_DIFFUSION = "text2mesh-tiny-diffusion"
VQGAN_NEEDED = (f"--generator vqgan needs a model: --vqgan {TINY_VQGAN} (shipped), a taming model.ckpt "
                "(with its model.yaml), a diffusers VQModel folder or a hub id")
DIFFUSION_NEEDED = (f"--generator diffusion needs a model: --diffusion {TINY_DIFFUSION} (shipped), a diffusers "
                    "UNet2DModel folder or hub id, or a guided-diffusion .pt file")


def _check_vqgan(cfg: Config) -> None:
    if not cfg.imagine.vqgan:
        raise ConfigError(VQGAN_NEEDED)


def _check_diffusion(cfg: Config) -> None:
    im = cfg.imagine
    if not im.diffusion:
        raise ConfigError(DIFFUSION_NEEDED)
    if im.skip_steps >= im.steps:
        raise ConfigError(f"--skip-steps ({im.skip_steps}) must be below --steps ({im.steps})")
    if im.skip_steps and im.init_image is None:
        raise ConfigError("--skip-steps starts from a noised --init-image; give one (or drop --skip-steps)")


# Each generator's own check, by its name in the registry (text2mesh.generators.REGISTRY).
_CHECKS: dict[str, Callable[[Config], None]] = {"vqgan": _check_vqgan, "diffusion": _check_diffusion}


def check_generator_settings(cfg: Config) -> None:
    """ConfigError for settings ``imagine.generator`` refuses (the name itself is checked by the registry)."""
    check = _CHECKS.get(cfg.imagine.generator)
    if check is not None:
        check(cfg)


def check_settings(cfg: Config) -> None:
    """ConfigError for 2D settings that cannot run: the generator's own rules, then the prompt schedule."""
    check_generator_settings(cfg)
    im = cfg.imagine
    if im.prompt_schedule:
        if any(not entry.strip() for entry in im.prompt_schedule):
            raise ConfigError("a prompt of --prompt-schedule is empty; separate prompts with ^, e.g. \"a seed^a tree\"")
        if im.change_every < 1:
            raise ConfigError(f"--change-every must be at least 1, got {im.change_every}")
