"""The 2D mode's sampled pictures (``imagine --generator diffusion``): a CLIP-guided diffusion run
(:mod:`text2mesh.generators.diffusion`) with the run folder of the other generators.

The targets, cutout schedule and objective are the optimized generators' (:class:`CutoutScore`,
scoring the predicted clean picture at every step); a step is one DDIM step instead of one Adam
step. A run folder holds ``config.yaml``, ``image.png`` (at ``imagine.size``), ``progress.gif``
(the predicted clean picture, ``imagine.gif_frames`` frames), ``loss.csv`` (the guidance loss per
step: total and its clip/range/tv terms) and ``renders/``. Nothing is optimized, so there is no
checkpoint: an interrupted run is run again (the same seed gives the same picture), and ``vary``
re-noises the parent's picture part of the way and samples it again with new seeds (SDEdit).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from .config import Config, load_config, save_config
from .errors import ConfigError
from .generators.base import output_size, resize_image
from .generators.diffusion import DiffusionModel, Guidance, load_diffusion, sample
from .imaging import (
    IMAGE,
    LOOP_SEED_OFFSET,
    PROGRESS,
    CutoutScore,
    ImageResult,
    _device_and_clip,
    _preview_size,
    _uint8,
    clear_frames,
    cutout_schedule,
    frame_every,
    imagine,
    load_picture,
    run_objectives,
    save_frame,
    write_pictures,
)
from .optimize import Callback, ProgressBar
from .run import CONFIG, RunFolder, read_losses

__all__ = ["SamplingProgress", "imagine_sampled", "load_sampled_run", "sampled_run_config", "vary_sampled"]


class SamplingProgress:
    """What callbacks see of a sampling run: the attributes they read of a
    :class:`~text2mesh.optimize.Loop` (``step`` done, ``total``, ``losses``, ``parts``)."""

    def __init__(self, total: int) -> None:
        self.step = 0
        self.total = total
        self.losses: list[float] = []
        self.parts: list[dict[str, float]] = []


def sampled_run_config(run_dir: str | Path) -> Config | None:
    """The config of a sampled (diffusion) run folder, or None for any other folder."""
    from .generators import is_sampler

    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return None
    cfg = load_config(path=path)
    return cfg if is_sampler(cfg.imagine.generator) else None


def diffusion_model(cfg: Config) -> DiffusionModel:
    """The run's diffusion model (where the last run left it), checked against its steps (before CLIP loads)."""
    model = load_diffusion(cfg.imagine.diffusion, cfg.imagine.diffusion_flags)
    model.scheduler(cfg.imagine.steps)
    return model


def _guidance(cfg: Config, clip, steps: int) -> Guidance:
    """The run's CLIP guidance: the shared cutouts and objective, their own seeded random source."""
    im = cfg.imagine
    scorer = CutoutScore(run_objectives(cfg, clip), cutout_schedule(cfg), iters=steps, clip_size=tuple(clip.image_size),
                         change_every=im.change_every)
    cutouts = torch.Generator().manual_seed(cfg.optim.seed + LOOP_SEED_OFFSET)
    return Guidance(lambda picture, step: scorer.score(picture, step, cutouts), im.guidance_scale, im.range_weight,
                    im.tv_weight)


def _run_sampler(cfg: Config, model: DiffusionModel, guidance: Guidance, run: RunFolder | None, *,
                 init: Tensor | None, callbacks: Sequence[Callback]) -> tuple[Tensor, SamplingProgress]:
    """Sample, telling ``callbacks`` after each step and saving ``imagine.gif_frames`` frames of the
    predicted picture in ``run``; returns the picture [3, H, W] in [0, 1] at the output size."""
    im = cfg.imagine
    state = SamplingProgress(im.steps - im.skip_steps)
    every = frame_every(state.total, cfg)
    preview = _preview_size(output_size(cfg))
    if run is not None:
        clear_frames(run)
    for callback in callbacks:
        callback.on_start(state)
    steps = sample(model, guidance, steps=im.steps, skip_steps=im.skip_steps, init=init, eta=im.eta,
                   generator=torch.Generator().manual_seed(cfg.optim.seed))
    for step in steps:
        state.step += 1
        state.losses.append(step.loss)
        state.parts.append(step.parts)
        if run is not None and (state.step % every == 0 or state.step == state.total):
            save_frame(resize_image((step.predicted[0].float().cpu().clamp(-1, 1) + 1) / 2, preview), run, state.step)
        for callback in callbacks:
            callback.on_step(state, step.loss, step.parts)
    for callback in callbacks:
        callback.on_end(state)
    picture = (step.sample[0].detach().float().cpu().clamp(-1, 1) + 1) / 2
    return resize_image(picture, output_size(cfg)), state


def imagine_sampled(cfg: Config, output_dir: str | Path | None, *, init: Tensor | None = None, clip=None,
                    overwrite: bool = False, progress: bool = False,
                    callbacks: Sequence[Callback] = ()) -> ImageResult:
    """A CLIP-guided diffusion picture of a prepared config (see :func:`text2mesh.imagine`)."""
    model = diffusion_model(cfg)
    device, clip = _device_and_clip(cfg, clip)
    run = None
    if output_dir is not None:
        run = RunFolder.create(output_dir, overwrite=overwrite)
        save_config(cfg, run.config)
    guidance = _guidance(cfg, clip, cfg.imagine.steps - cfg.imagine.skip_steps)
    model = model.to(device)
    bar = ProgressBar(disable=not progress, desc="imagine")
    image, state = _run_sampler(cfg, model, guidance, run, init=init, callbacks=[bar, *callbacks])
    files: list[Path] = []
    if run is not None:
        run.write_losses(state.losses, state.parts)
        files = write_pictures(run, image, state.losses)
    return ImageResult(cfg, None, image, state.losses, None if run is None else run.path, files)


def load_sampled_run(run_dir: str | Path, cfg: Config) -> ImageResult:
    """A finished sampled run folder: its image.png and losses (no model or CLIP needed)."""
    run = RunFolder(run_dir)
    image = resize_image(load_picture(run.path / IMAGE, "the run's image"), output_size(cfg))
    losses = read_losses(run.losses) if run.losses.is_file() else []
    files = [p for p in (run.path / IMAGE, run.path / PROGRESS) if p.is_file()]
    return ImageResult(cfg, None, image, losses, run.path, files)


def vary_sampled(parent_dir: str | Path, parent_cfg: Config, strength: float, n: int, root: RunFolder, *,
                 steps: int | None = None, seed: int = 0, clip=None, overwrite: bool = False,
                 progress: bool = False) -> list[ImageResult]:
    """Neighbours of a sampled picture: the parent's image.png noised to ``strength`` of the way
    back (its last ``strength x imagine.steps`` steps, or ``steps``) and sampled again with seed
    ``parent seed + seed + k + 1``; strength 0 (or 0 steps) gives the parent's picture."""
    parent = load_sampled_run(parent_dir, parent_cfg)
    total = parent_cfg.imagine.steps
    redo = steps if steps is not None else round(min(strength, 1.0) * total)
    if not 0 <= redo <= total:
        raise ConfigError(f"--iters for a diffusion run counts its steps to sample again: 0 to {total}, got {redo}")
    if redo:
        _, clip = _device_and_clip(parent_cfg, clip)  # loaded once for all the variations
    results = []
    for k in range(n):
        cfg = copy.deepcopy(parent_cfg)
        cfg.optim.seed = parent_cfg.optim.seed + seed + k + 1
        cfg.imagine.init_image = str(Path(parent_dir).resolve() / IMAGE)
        cfg.imagine.skip_steps = total - redo
        out = root.path / f"variation-{k}"
        if redo == 0:
            from .export.pictures import save_png

            run = RunFolder.create(out, overwrite=overwrite)
            save_config(cfg, run.config)
            files = [save_png(_uint8(parent.image), run.output(IMAGE))]
            results.append(ImageResult(cfg, None, parent.image, [], run.path, files))
        else:
            results.append(imagine(None, cfg, out, clip=clip, overwrite=overwrite, progress=progress))
    return results
