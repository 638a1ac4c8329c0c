"""The 2D mode: ``imagine`` a picture from text, explore ``variations`` and ``vary`` a result.

The same machine as ``stylize``, reduced to one view of a flat canvas: per iteration the
canvas (:mod:`text2mesh.generators`) draws its texture, the flat grid scene renders it unlit
through the shared renderer, CLIP sees random cutouts (:mod:`text2mesh.cutouts`) and the
shared :class:`~text2mesh.guidance.objective.Objective` scores them against the weighted
targets; the shared :class:`~text2mesh.optimize.Loop` does the rest (progress bar, checkpoints,
SIGINT/SIGTERM, resume)::

    import text2mesh
    cfg = text2mesh.load_config(overrides={"guidance": {"clip_model": "text2mesh-tiny"},
                                           "imagine": {"generator": "strokes"}})
    result = text2mesh.imagine("a red image", cfg, output_dir="runs/red")
    result.image            # [3, H, W] float in [0, 1], also runs/red/image.png
    text2mesh.vary("runs/red", strength=0.3, n=4)

A run folder holds ``config.yaml``, ``checkpoint.pt``, ``image.png``, ``progress.gif``
(``strokes.gif`` for the strokes generator: the painting stroke by stroke), ``loss.csv`` and
``renders/`` (the progress frames). The ``diffusion`` generator samples instead of optimizing
(:mod:`text2mesh.sampling`): the same targets, cutouts and run folder, without a checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .config import Config, OptimConfig, load_config, save_config
from .cutouts import CutoutSchedule, make_cutouts
from .errors import ConfigError, ImageError, Interrupted, RunFolderError
from .generators import build_canvas, check_generator, generator_module, is_sampler
from .generators.base import Canvas, output_size, resize_image, working_size
from .generators.scene import CanvasScene, canvas_scene
from .generators.strokes import StrokeCanvas
from .guidance.objective import Objective, Term
from .optimize import Callback, Every, Loop, ProgressBar
from .run import RunFolder, read_losses
from .targets import Target, build_targets, prompt_spec, split_weight, with_prompts

__all__ = [
    "ImageResult",
    "ImagineProblem",
    "contact_sheet",
    "imagine",
    "imagine_variations",
    "load_image_run",
    "load_picture",
    "vary",
]

log = logging.getLogger(__name__)

LOOP_SEED_OFFSET = 1_000_003
IMAGE = "image.png"
PROGRESS = "progress.gif"
STROKES = "strokes.gif"
CONTACT_SHEET = "contact_sheet.png"
PREVIEW_SIDE = 256  # shorter side of strokes.gif frames and contact-sheet tiles
MAX_STROKE_FRAMES = 96
VARY_ITERS = 0.25  # vary's default continuation: this x strength x the parent's iterations


@dataclass
class ImageResult:
    """A finished (or reloaded) 2D run.

    Attributes:
        config: the resolved config (prompts included).
        canvas: the trained canvas (eval mode, on the CPU); ``canvas.texture(size)`` redraws it;
            None for a sampled picture (``diffusion``: nothing was optimized).
        image: [3, H, W] float32 in [0, 1] at the configured output size.
        losses: total loss per iteration.
        run_dir: the run folder, or None when nothing was written.
        files: the pictures written in the run folder.
    """

    config: Config
    canvas: Canvas | None
    image: Tensor
    losses: list[float]
    run_dir: Path | None = None
    files: list[Path] = dataclasses.field(default_factory=list)


def load_picture(path: str | Path, what: str = "init image") -> Tensor:
    """Read a picture file as [3, H, W] float32 in [0, 1] (alpha composited on white).

    Raises:
        ImageError: the file is missing or not a readable image (one line, naming ``what``).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgba = img.convert("RGBA")
    except FileNotFoundError:
        raise ImageError(f"{what} not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"cannot read {what} {path}: {str(exc).splitlines()[0]}; give a PNG or JPEG file") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _check_image_prompts(cfg: Config) -> None:
    for spec in cfg.image_prompts:
        load_picture(split_weight(spec)[0], "image prompt")


def run_targets(cfg: Config) -> list[Target]:
    """The run's weighted targets from ``cfg.prompts`` / ``image_prompts`` / ``negatives``.

    Without any positive weight the run is refused, except when it starts from an init image
    (then the canvas simply stays that image).
    """
    targets = [Target("text", *split_weight(p)) for p in cfg.prompts]
    targets += [Target("image", *split_weight(p)) for p in cfg.image_prompts]
    targets += [Target("text", n, -1.0) for n in cfg.negatives]
    keeps_init = cfg.imagine.init_image is not None and all(t.weight <= 0 for t in targets)
    if keeps_init and targets and all(t.value.strip() for t in targets):
        return targets
    return build_targets(None, cfg.prompts, cfg.image_prompts, cfg.negatives)


def stage_configs(cfg: Config) -> list[Config]:
    """One config per stage of ``imagine.prompt_schedule`` (its entry in place of the main prompt,
    the other targets kept), or just ``cfg``."""
    stages = []
    for entry in cfg.imagine.prompt_schedule:
        stage = copy.deepcopy(cfg)
        stage.prompts = [prompt_spec(entry.strip()), *cfg.prompts[1:]]
        stages.append(stage)
    return stages or [cfg]


def cutout_schedule(cfg: Config) -> CutoutSchedule:
    im = cfg.imagine
    for name in ("cutout_start", "cutout_end"):
        lo, hi = getattr(im, name)
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"imagine.{name} must be two sizes 0 < min <= max <= 1, got {[lo, hi]}")
    if im.n_cutouts < 1:
        raise ConfigError(f"imagine.n_cutouts must be at least 1, got {im.n_cutouts}")
    return CutoutSchedule(im.n_cutouts, tuple(im.cutout_start), tuple(im.cutout_end), full=True)


class CutoutScore:
    """The CLIP loss of a picture at a step of a run: cutouts of the step's sizes against the
    step's objective (what every 2D generator is judged by).

    Args:
        objective: weighted CLIP targets, or one per stage of a prompt schedule.
        schedule: cutout counts and sizes over the run.
        iters: the run's total steps (for the cutout schedule).
        clip_size: (h, w) CLIP's input size.
        change_every: steps per stage when ``objective`` is a list (the last stage stays).
    """

    def __init__(self, objective: Objective | Sequence[Objective], schedule: CutoutSchedule, *, iters: int,
                 clip_size: tuple[int, int], change_every: int = 50) -> None:
        self.objectives = [objective] if isinstance(objective, Objective) else list(objective)
        self.change_every = change_every
        self.schedule = schedule
        self.iters = iters
        self.clip_size = clip_size

    def progress(self, step: int) -> float:
        """Share of the run done at ``step`` (0 to 1)."""
        return min(1.0, step / max(1, self.iters - 1))

    def score(self, image: Tensor, step: int, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        """The CLIP loss of ``image`` ([1, 3, H, W]) at ``step``: its cutouts of the step's sizes
        against the step's objective."""
        scales = self.schedule.scales(self.progress(step))
        cutouts = make_cutouts(
            image, self.schedule.n, self.clip_size, scales, full=self.schedule.full, generator=generator
        )
        return self.objective_at(step)([Term("cutouts", cutouts, 1, reduce="mean")])

    def objective_at(self, step: int) -> Objective:
        """The objective of the prompt schedule's stage at ``step``."""
        return self.objectives[min(step // max(1, self.change_every), len(self.objectives) - 1)]


class ImagineProblem(CutoutScore):
    """One picture against CLIP targets, as a :class:`~text2mesh.optimize.Problem`.

    Per iteration: canvas texture at ``size`` -> unlit render of the flat grid scene (or the
    texture itself when ``scene`` is False) -> cutouts at ``clip_size`` -> objective.

    Args:
        canvas: what is optimized (on the run's device).
        objective, schedule, clip_size, change_every: as for :class:`CutoutScore`.
        iters: the run's total iterations (for the cutout schedule and the field's progress).
        size: (H, W) of the picture while optimizing.
        scene: draw the texture through the flat grid scene (:class:`CanvasScene`); False
            scores the texture directly (the same picture, up to 0.2% of the local contrast).
    """

    def __init__(
        self,
        canvas: Canvas,
        objective: Objective | Sequence[Objective],
        schedule: CutoutSchedule,
        *,
        iters: int,
        size: tuple[int, int],
        clip_size: tuple[int, int],
        scene: bool = True,
        change_every: int = 50,
    ) -> None:
        super().__init__(objective, schedule, iters=iters, clip_size=clip_size, change_every=change_every)
        self.canvas = canvas
        self.size = size
        device = next(canvas.parameters()).device
        self.scene: CanvasScene | None = canvas_scene(size, device=device) if scene else None
        self.last_texture: Tensor | None = None  # [3, H, W] of the last picture, for progress frames

    def parameters(self):
        return self.canvas.parameters()

    def state_dict(self) -> dict[str, Any]:
        return self.canvas.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.canvas.load_state_dict(state)

    def picture(self, progress: float = 1.0) -> Tensor:
        """What CLIP looks at: [1, 3, H, W] in [0, 1] (differentiable)."""
        texture = self.canvas.texture(self.size, progress)
        self.last_texture = texture.detach()
        if self.scene is None:
            return texture[None]
        return self.scene.render(texture)

    def loss(self, step: int, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        return self.score(self.picture(self.progress(step)), step, generator)


def _init_tensor(cfg: Config) -> Tensor | None:
    """The init image resized to the output size (canvases resize it further), or None."""
    if cfg.imagine.init_image is None:
        return None
    return resize_image(load_picture(cfg.imagine.init_image), output_size(cfg))


@dataclass
class _Session:
    cfg: Config
    problem: ImagineProblem
    loop: Loop
    device: torch.device


def _optim(cfg: Config) -> OptimConfig:
    lr = cfg.imagine.lr if cfg.imagine.lr is not None else generator_module(cfg.imagine.generator).LR
    return dataclasses.replace(cfg.optim, lr=lr)


def run_objectives(cfg: Config, clip) -> list[Objective]:
    """The run's objective, one per stage of its prompt schedule."""
    return [Objective(clip, run_targets(stage), averaging=cfg.guidance.averaging, chunk_size=cfg.guidance.clip_batch)
            for stage in stage_configs(cfg)]


def _session(cfg: Config, clip, device: torch.device, *, init: Tensor | None) -> _Session:
    canvas = build_canvas(cfg, init=init).to(device)
    problem = ImagineProblem(
        canvas,
        run_objectives(cfg, clip),
        cutout_schedule(cfg),
        iters=cfg.optim.iters,
        size=working_size(cfg),
        clip_size=tuple(clip.image_size),
        change_every=cfg.imagine.change_every,
    )
    generator = torch.Generator().manual_seed(cfg.optim.seed + LOOP_SEED_OFFSET)
    loop = Loop(problem, _optim(cfg), generator=generator)
    return _Session(cfg, problem, loop, device)


def _preview_size(size: tuple[int, int]) -> tuple[int, int]:
    height, width = size
    scale = min(1.0, PREVIEW_SIDE / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _uint8(image: Tensor) -> np.ndarray:
    """[3, H, W] in [0, 1] -> [H, W, 3] uint8."""
    return (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def frame_every(steps: int, cfg: Config) -> int:
    """Steps between two progress frames, so a run of ``steps`` leaves about ``imagine.gif_frames``."""
    return max(1, math.ceil(steps / max(1, cfg.imagine.gif_frames)))


@torch.no_grad()
def final_image(canvas: Canvas, cfg: Config) -> Tensor:
    """The canvas at the output size: [3, H, W] float32 in [0, 1] on the CPU."""
    return canvas.texture(output_size(cfg)).float().cpu()


class _RunWriter(Callback):
    """Checkpoints, loss.csv and progress frames of a 2D run."""

    def __init__(self, session: _Session, run: RunFolder) -> None:
        self.session = session
        self.run = run

    def checkpoint(self, loop: Loop) -> None:
        self.run.save_checkpoint({"loop": loop.state_dict(), "kind": "imagine"})
        self.run.write_losses(loop.losses, loop.parts)

    @torch.no_grad()
    def frame(self, loop: Loop) -> None:
        """A progress frame: the picture CLIP was shown at this step (drawn again only before the
        first step: a stroke painting costs as much to draw as a step)."""
        problem = self.session.problem
        picture = problem.last_texture if problem.last_texture is not None else problem.canvas.texture(problem.size)
        save_frame(picture, self.run, loop.step)

    def callbacks(self) -> list[Callback]:
        cfg = self.session.cfg
        return [
            Every(frame_every(cfg.optim.iters, cfg), self.frame),
            Every(cfg.optim.checkpoint_every, self.checkpoint, on_interrupt=True),
        ]

    def on_start(self, loop: Loop) -> None:
        if loop.step == 0:  # a fresh run: drop frames an earlier run left here (--overwrite)
            clear_frames(self.run)
            self.frame(loop)


def save_frame(picture: Tensor, run: RunFolder, step: int) -> None:
    """``renders/progress_<step>.png`` of a picture [3, H, W] in [0, 1] (a frame of progress.gif)."""
    from .export.pictures import save_png

    save_png(_uint8(picture), run.renders / f"progress_{step:05d}.png")


def clear_frames(run: RunFolder) -> None:
    """Drop the progress frames an earlier run left in the folder (--overwrite)."""
    for old in run.renders.glob("progress_*.png"):
        old.unlink()


def write_pictures(run: RunFolder, image: Tensor, losses: Sequence[float]) -> list[Path]:
    """image.png ([3, H, W] in [0, 1]), progress.gif of the run's frames and renders/loss.png."""
    from PIL import Image

    from .export.pictures import loss_plot, save_gif, save_png

    written = [save_png(_uint8(image), run.output(IMAGE))]
    frames = []
    for path in sorted(run.renders.glob("progress_*.png")):
        with Image.open(path) as img:
            frames.append(np.asarray(img.convert("RGB")))
    if frames:
        written.append(save_gif(frames, run.output(PROGRESS), fps=8))
    written.append(save_png(loss_plot(losses), run.renders / "loss.png"))
    return written


def _write_outputs(session: _Session, run: RunFolder, image: Tensor) -> list[Path]:
    """image.png, progress.gif (+ strokes.gif) and renders/loss.png."""
    from .export.pictures import save_gif

    written = write_pictures(run, image, session.loop.losses)
    canvas = session.problem.canvas
    if isinstance(canvas, StrokeCanvas):
        written.insert(-1, save_gif(stroke_frames(canvas, session.cfg), run.output(STROKES), fps=12))
    return written


@torch.no_grad()
def stroke_frames(canvas: StrokeCanvas, cfg: Config) -> list[np.ndarray]:
    """The painting stroke by stroke, from the empty canvas to the finished painting.

    One frame per stroke for up to ``MAX_STROKE_FRAMES`` strokes (more: evenly spaced counts).
    """
    n = len(canvas.strokes())
    size = _preview_size(output_size(cfg))
    count = min(n, MAX_STROKE_FRAMES) + 1
    steps = sorted({round(i * n / (count - 1)) for i in range(count)})
    return [_uint8(frame) for frame in canvas.painting_frames(size, steps)]


def _execute(session: _Session, run: RunFolder | None, *, progress: bool,
             callbacks: Sequence[Callback] = ()) -> ImageResult:
    callbacks = [ProgressBar(disable=not progress, desc="imagine"), *callbacks]
    if run is not None:
        writer = _RunWriter(session, run)
        callbacks += writer.callbacks()
        callbacks.append(writer)
    try:
        session.loop.run(callbacks)
    except Interrupted as exc:
        where = f"; state saved in {run.path}; continue with: text2mesh imagine --resume {run.path}" if run else ""
        raise Interrupted(f"{exc}{where}") from None
    canvas = session.problem.canvas
    canvas.eval()
    image = final_image(canvas, session.cfg)
    files: list[Path] = []
    if run is not None:
        files = _write_outputs(session, run, image)
    run_dir = None if run is None else run.path
    return ImageResult(session.cfg, canvas.cpu(), image, list(session.loop.losses), run_dir, files)


def _prepare(
    prompt: str | None,
    config: Config | None,
    prompts: Sequence[str],
    image_prompts: Sequence[str],
    negatives: Sequence[str],
    init_image: str | Path | None,
) -> Config:
    cfg = with_prompts(config if config is not None else load_config(), prompt, prompts, image_prompts, negatives)
    if init_image is not None:
        cfg.imagine.init_image = str(Path(init_image).resolve())
    from .generators.settings import TINY_DIFFUSION, TINY_VQGAN

    for field in ("vqgan", "diffusion"):  # a local model by its full path, so the saved config works from anywhere
        spec = getattr(cfg.imagine, field)
        if spec and spec not in (TINY_VQGAN, TINY_DIFFUSION) and Path(spec).expanduser().exists():
            setattr(cfg.imagine, field, str(Path(spec).expanduser().resolve()))
    check_generator(cfg)
    if cfg.imagine.prompt_schedule and not cfg.prompts:
        cfg.prompts = [prompt_spec(cfg.imagine.prompt_schedule[0].strip())]
    output_size(cfg)
    working_size(cfg)
    cutout_schedule(cfg)
    run_targets(cfg)
    _check_image_prompts(cfg)
    return cfg


def _device_and_clip(cfg: Config, clip):
    from .api import resolve_device

    device = resolve_device(cfg.optim.device)
    if clip is None:
        from .guidance.clip import load_clip

        g = cfg.guidance
        clip = load_clip(g.clip_model, g.clip_pretrained, g.clip_checkpoint, device=device)
    return device, clip.to(device)


def imagine(
    prompt: str | None,
    config: Config | None = None,
    output_dir: str | Path | None = None,
    *,
    prompts: Sequence[str] = (),
    image_prompts: Sequence[str] = (),
    negatives: Sequence[str] = (),
    init_image: str | Path | None = None,
    clip=None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
) -> ImageResult:
    """Make a picture that matches the prompt(s).

    Args:
        prompt: the main text prompt (weight 1); None: the config's prompts.
        config: the run's settings (``imagine`` section: generator, size, cutouts, ...);
            default: the default config.
        output_dir: run folder to write; None: write nothing.
        prompts: extra ``"text:weight"`` targets (negative weights push away);
        image_prompts: ``"file[:weight]"``; negatives: texts with weight -1.
        init_image: start from this picture (overrides ``config.imagine.init_image``).
        clip: a loaded ClipModel (default: ``config.guidance``'s model on the run's device).
        overwrite: allow a non-empty ``output_dir``.
        resume: continue the run in ``output_dir`` from its checkpoint (its saved config wins).
        progress: show a progress bar on stderr.
        callbacks: more :class:`~text2mesh.optimize.Callback` hooks on the loop (e.g. a job's progress).
    Raises:
        Text2MeshError subclasses for user errors; Interrupted after saving on SIGINT/SIGTERM.
    """
    if resume:
        if output_dir is None:
            raise RunFolderError("--resume needs the run folder: give -o/--output DIR")
        return resume_image_run(output_dir, clip=clip, progress=progress, callbacks=callbacks)
    cfg = _prepare(prompt, config, prompts, image_prompts, negatives, init_image)
    if output_dir is not None:
        RunFolder.check_new(output_dir, overwrite=overwrite)
    init = _init_tensor(cfg)  # cheap checks (folder, init image) before loading CLIP
    if is_sampler(cfg.imagine.generator):
        from .sampling import imagine_sampled

        return imagine_sampled(cfg, output_dir, init=init, clip=clip, overwrite=overwrite, progress=progress,
                               callbacks=callbacks)
    device, clip = _device_and_clip(cfg, clip)
    run = None
    if output_dir is not None:
        run = RunFolder.create(output_dir, overwrite=overwrite)
        save_config(cfg, run.config)
    session = _session(cfg, clip, device, init=init)
    return _execute(session, run, progress=progress, callbacks=callbacks)


def resume_image_run(run_dir: str | Path, *, clip=None, progress: bool = False,
                     callbacks: Sequence[Callback] = ()) -> ImageResult:
    """Continue an interrupted (or finished) 2D run to its configured iteration count."""
    from .sampling import sampled_run_config

    if sampled_run_config(run_dir) is not None:
        raise RunFolderError(f"{run_dir} is a diffusion run, which keeps no state to resume: run it again "
                             "(the same seed gives the same picture)")
    run = RunFolder.open(run_dir)
    cfg = load_config(path=run.config)
    state = _image_checkpoint(run)
    device, clip = _device_and_clip(cfg, clip)
    session = _session(cfg, clip, device, init=state["loop"]["problem"].get("init"))
    session.loop.load_state_dict(state["loop"])
    log.info("resuming %s at iteration %d of %d", run.path, session.loop.step, cfg.optim.iters)
    return _execute(session, run, progress=progress, callbacks=callbacks)


def _image_checkpoint(run: RunFolder) -> dict[str, Any]:
    state = run.load_checkpoint()
    if state.get("kind") != "imagine":
        raise RunFolderError(f"{run.path} is not an imagine run folder; give a folder `text2mesh imagine` wrote")
    return state


def load_image_run(run_dir: str | Path) -> ImageResult:
    """Reload a 2D run folder's latest checkpoint on the CPU (no CLIP needed); a sampled
    (diffusion) run's picture and losses."""
    from .sampling import load_sampled_run, sampled_run_config

    sampled = sampled_run_config(run_dir)
    if sampled is not None:
        return load_sampled_run(run_dir, sampled)
    run = RunFolder.open(run_dir)
    cfg = load_config(path=run.config)
    state = _image_checkpoint(run)
    canvas_state = state["loop"]["problem"]
    canvas = build_canvas(cfg, init=canvas_state.get("init"))
    canvas.load_state_dict(canvas_state)
    canvas.eval()
    losses = list(state["loop"]["losses"])
    if run.losses.is_file():
        losses = read_losses(run.losses) or losses
    files = [p for p in (run.path / IMAGE, run.path / PROGRESS, run.path / STROKES) if p.is_file()]
    return ImageResult(cfg, canvas, final_image(canvas, cfg), losses, run.path, files)


def contact_sheet(images: Sequence[Tensor], labels: Sequence[str] = (), columns: int | None = None) -> np.ndarray:
    """Pictures ([3, H, W] in [0, 1], any sizes) side by side, previews captioned.

    Returns:
        [rows * h, columns * w, 3] uint8 with every picture resized to the first one's preview size.
    """
    from .export.pictures import caption, tile

    size = _preview_size(tuple(images[0].shape[-2:]))
    tiles = []
    for i, image in enumerate(images):
        picture = _uint8(resize_image(image.float(), size))
        tiles.append(caption(picture, labels[i]) if i < len(labels) else picture)
    columns = columns or min(4, len(tiles))
    return tile(tiles, columns)


def imagine_variations(
    prompt: str | None,
    n: int,
    config: Config | None = None,
    output_dir: str | Path | None = None,
    **kwargs,
) -> list[ImageResult]:
    """``n`` runs with seeds ``seed, seed + 1, ...``; with ``output_dir``: one run folder per seed
    (``seed-<s>/``) and ``contact_sheet.png``. Keyword arguments as for :func:`imagine`."""
    if n < 1:
        raise ConfigError(f"--variations must be at least 1, got {n}")
    base = config if config is not None else load_config()
    results = []
    root = None
    if output_dir is not None:
        root = RunFolder.create(output_dir, overwrite=kwargs.get("overwrite", False), renders=False)
    for k in range(n):
        cfg = copy.deepcopy(base)
        cfg.optim.seed = base.optim.seed + k
        sub = None if root is None else root.path / f"seed-{cfg.optim.seed}"
        results.append(imagine(prompt, cfg, sub, **kwargs))
    if root is not None:
        from .export.pictures import save_png

        sheet = contact_sheet([r.image for r in results], [f"seed {r.config.optim.seed}" for r in results])
        save_png(sheet, root.output(CONTACT_SHEET))
    return results


def vary(
    run_dir: str | Path,
    strength: float = 0.3,
    n: int = 4,
    output_dir: str | Path | None = None,
    *,
    iters: int | None = None,
    seed: int = 0,
    device: str | None = None,
    clip=None,
    overwrite: bool = False,
    progress: bool = False,
) -> list[ImageResult]:
    """Neighbours of a finished 2D run: perturb its parameters, then continue optimizing.

    Each variation k adds Gaussian noise of ``strength`` times each parameter tensor's spread
    (seeded by ``seed + k``) and then runs ``iters`` more iterations of the same objective
    (default: a quarter of ``strength`` times the parent's iterations) with a fresh
    optimizer at ``strength`` times the parent's learning rate (at most 1 times) and the
    parent's final cutout sizes. Strength 0 reproduces the parent exactly. A diffusion run's
    variations instead noise its picture back by ``strength`` of its steps (or ``iters`` steps)
    and sample them again with new seeds (:func:`text2mesh.sampling.vary_sampled`).

    Args:
        run_dir: a folder written by ``imagine``.
        strength: size of the step away from the parent (>= 0; ~0.1 close, ~1 far).
        n: number of variations.
        output_dir: where to write one run folder per variation (``variation-<k>/``) and
            ``contact_sheet.png``; default ``<run_dir>/variations``.
        iters: iterations after the perturbation (see above).
        seed: seed of the perturbations (variation k uses ``seed + k``).
        device: where to continue (default: the parent's ``optim.device``).
        clip, overwrite, progress: as for :func:`imagine`.
    Returns:
        n :class:`ImageResult` s, each with its run folder.
    """
    if strength < 0 or not math.isfinite(strength):
        raise ConfigError(f"--strength must be a number >= 0, got {strength}")
    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    from .sampling import sampled_run_config, vary_sampled

    sampled = sampled_run_config(run_dir)
    if sampled is not None:
        if device is not None:
            sampled.optim.device = device
        root = RunFolder.create(output_dir if output_dir is not None else Path(run_dir) / "variations",
                                overwrite=overwrite, renders=False)
        results = vary_sampled(run_dir, sampled, strength, n, root, steps=iters, seed=seed, clip=clip,
                               overwrite=overwrite, progress=progress)
        _save_variations_sheet(results, root)
        return results
    parent_run = RunFolder.open(run_dir)
    parent_cfg = load_config(path=parent_run.config)
    if device is not None:
        parent_cfg.optim.device = device
    state = _image_checkpoint(parent_run)
    canvas_state = state["loop"]["problem"]
    extra = iters if iters is not None else round(min(strength, 1.0) * parent_cfg.optim.iters * VARY_ITERS)
    if extra < 0:
        raise ConfigError(f"--iters must be >= 0, got {extra}")
    root = RunFolder.create(
        output_dir if output_dir is not None else parent_run.path / "variations", overwrite=overwrite, renders=False
    )
    device, clip = (None, None) if extra == 0 else _device_and_clip(parent_cfg, clip)
    results = []
    for k in range(n):
        cfg = copy.deepcopy(parent_cfg)
        cfg.optim.iters = extra
        cfg.optim.seed = parent_cfg.optim.seed + seed + k + 1
        cfg.imagine.cutout_start = list(cfg.imagine.cutout_end)
        cfg.imagine.lr = _optim(parent_cfg).lr * min(strength, 1.0)
        run = RunFolder.create(root.path / f"variation-{k}", overwrite=overwrite)
        save_config(cfg, run.config)
        if extra == 0:
            canvas = _perturbed_canvas(parent_cfg, canvas_state, strength, seed + k)
            result = _static_result(cfg, canvas, run)
        else:
            session = _session(cfg, clip, device, init=canvas_state.get("init"))
            session.problem.canvas.load_state_dict(canvas_state)
            generator = torch.Generator().manual_seed(seed + k)
            session.problem.canvas.perturb(strength, generator)
            result = _execute(session, run, progress=progress)
        results.append(result)
    _save_variations_sheet(results, root)
    return results


def _save_variations_sheet(results: Sequence[ImageResult], root: RunFolder) -> None:
    from .export.pictures import save_png

    sheet = contact_sheet([r.image for r in results], [f"variation {k}" for k in range(len(results))])
    save_png(sheet, root.output(CONTACT_SHEET))


def _perturbed_canvas(cfg: Config, canvas_state: dict, strength: float, seed: int) -> Canvas:
    canvas = build_canvas(cfg, init=canvas_state.get("init"))
    canvas.load_state_dict(canvas_state)
    canvas.perturb(strength, torch.Generator().manual_seed(seed))
    return canvas.eval()


def _static_result(cfg: Config, canvas: Canvas, run: RunFolder) -> ImageResult:
    """A variation without further optimization: checkpoint and image.png only."""
    from .export.pictures import save_png

    image = final_image(canvas, cfg)
    loop_state = {"problem": canvas.state_dict(), "step": 0, "losses": [], "parts": []}
    run.save_checkpoint({"loop": loop_state, "kind": "imagine"})
    files = [save_png(_uint8(image), run.output(IMAGE))]
    return ImageResult(cfg, canvas, image, [], run.path, files)
