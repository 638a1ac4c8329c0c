"""The ``diffusion`` generator: CLIP-guided sampling of an unconditional diffusion model (Crowson's
CLIP-guided diffusion, as in Disco Diffusion), with diffusers' UNet and DDIM scheduler.

Not a :class:`~text2mesh.generators.base.Canvas`: nothing is optimized. A sampler walks the DDIM
timesteps (diffusers' ``DDIMScheduler``); at each step the UNet predicts the noise, hence the clean
picture x0; CLIP scores cutouts of x0 against the run's targets (a ``score`` function the caller
gives: :mod:`text2mesh.imaging` passes the shared cutouts and objective), and the gradient of that
loss with respect to the noisy sample shifts the predicted noise, as classifier guidance does for
DDIM (Dhariwal & Nichol, eq. 14)::

    eps' = eps + sqrt(1 - alpha_bar_t) * guidance_scale * H * W * d loss / d x_t

(the gradient per pixel of the picture's area, so one scale serves every size). Optional range
and total-variation penalties on x0 join the loss, as Disco's ``range_scale`` and ``tv_scale``.

Where a model comes from (:func:`load_diffusion`):

- ``text2mesh-tiny-diffusion``: the project's own 32² model (``text2mesh/assets``), trained by
  ``scripts/train_tiny_diffusion.py`` on its synthetic pictures;
- a diffusers ``UNet2DModel`` folder (``config.json`` + weights, or a pipeline folder with
  ``unet/``), with its ``scheduler_config.json`` (or ``scheduler/``) when it has one, else DDPM's
  1000-step linear schedule; or a Hugging Face hub id (e.g. ``google/ddpm-celebahq-256``) through
  the normal cache (offline without it: one line saying what to pass);
- an OpenAI guided-diffusion ``.pt`` file (:mod:`text2mesh.generators.guided`), with its model flags
  (``imagine.diffusion_flags``) unless it is one of the published unconditional checkpoints.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..guidance.clip import ASSETS_DIR
from .base import resize_image
from .pretrained import file_stamp, frozen_pretrained, require_cached
from .settings import TINY_DIFFUSION

__all__ = [
    "TINY_DIFFUSION",
    "DiffusionModel",
    "Guidance",
    "SampleStep",
    "load_diffusion",
    "range_penalty",
    "sample",
    "tiny_diffusion_path",
    "tv_penalty",
]

SAMPLER = True  # a sampler, not a Canvas the optimization loop moves (see text2mesh.generators)
WAY_OUT = f"a local folder, a guided-diffusion .pt or {TINY_DIFFUSION}"


def tiny_diffusion_path() -> Path:
    """The shipped tiny diffusion model (a diffusers UNet2DModel folder with its scheduler config)."""
    return ASSETS_DIR / TINY_DIFFUSION


@dataclass(frozen=True)
class DiffusionModel:
    """A frozen noise-predicting UNet and the noise schedule it was trained with.

    Attributes:
        unet: a diffusers ``UNet2DModel`` (eval mode, no gradients), 3 or 6 output channels
            (6: guided-diffusion's learned variance after the noise).
        schedule: the training scheduler's config (beta schedule, steps, prediction type).
        source: where it came from (for messages).
    """

    unet: Any
    schedule: dict
    source: str

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the pictures it was trained on."""
        size = self.unet.config.sample_size or 64
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def to(self, device: str | torch.device) -> DiffusionModel:
        """The same model on ``device`` (the UNet moves in place)."""
        return DiffusionModel(self.unet.to(device), self.schedule, self.source)

    def scheduler(self, steps: int):
        """A ``DDIMScheduler`` over ``steps`` of the training schedule, predicting noise."""
        from diffusers import DDIMScheduler

        scheduler = DDIMScheduler.from_config({**self.schedule, "prediction_type": "epsilon"})
        if steps > scheduler.config.num_train_timesteps:
            raise ConfigError(f"--steps {steps} is more than the {scheduler.config.num_train_timesteps} timesteps "
                              f"{self.source} was trained with")
        scheduler.set_timesteps(steps)
        return scheduler

    def noise(self, x: Tensor, t: Tensor, alpha_bar: Tensor) -> Tensor:
        """The predicted noise of x_t [B, 3, H, W] at timestep t (differentiable wrt x)."""
        out = self.unet(x, t).sample[:, : x.shape[1]]
        kind = self.schedule.get("prediction_type", "epsilon")
        if kind == "sample":
            return (x - alpha_bar.sqrt() * out) / (1 - alpha_bar).sqrt()
        if kind == "v_prediction":
            return alpha_bar.sqrt() * out + (1 - alpha_bar).sqrt() * x
        return out


def _scheduler_config(source: str | Path) -> dict:
    """The model's scheduler config (``scheduler_config.json`` or ``scheduler/``), else DDPM's defaults."""
    from diffusers import DDIMScheduler

    for subfolder in (None, "scheduler"):
        try:
            return dict(DDIMScheduler.load_config(source, subfolder=subfolder))
        except (OSError, ValueError):
            continue
    return {}


def _unet_subfolder(path: Path) -> str | None:
    if (path / "config.json").is_file():
        return None
    if (path / "unet" / "config.json").is_file():
        return "unet"
    raise ConfigError(f"{path} is not a diffusers UNet2DModel folder (no config.json, nor unet/config.json)")


def _from_diffusers(source: str | Path, subfolder: str | None) -> DiffusionModel:
    from diffusers import UNet2DModel

    unet = frozen_pretrained(UNet2DModel, source, "diffusion model", WAY_OUT, subfolder=subfolder)
    return DiffusionModel(unet, _scheduler_config(source), str(source))


def _hub_subfolder(spec: str) -> str | None:
    """Where hub model ``spec`` keeps its UNet: None (the repository's root, as google/ddpm-*) or
    "unet" (a pipeline's folder); from the cache, else asked of the hub (require_cached has
    checked that it can be reached)."""
    from huggingface_hub import file_exists

    from ..guidance import clip as hub

    if hub.hf_cached_file(spec, "config.json", None):
        return None
    if hub.hf_cached_file(spec, "unet/config.json", None):
        return "unet"
    return None if file_exists(spec, "config.json") else "unet"


@functools.lru_cache(maxsize=2)
def _load(spec: str, flags: str | None, stamp: int | None) -> DiffusionModel:
    if spec == TINY_DIFFUSION:
        path = tiny_diffusion_path()
        if not (path / "config.json").is_file():
            raise ConfigError(f"the {TINY_DIFFUSION} model is missing ({path}); run scripts/train_tiny_diffusion.py")
        return _from_diffusers(path, None)
    path = Path(spec).expanduser()
    if path.suffix == ".pt":
        if not path.is_file():
            raise ConfigError(f"diffusion checkpoint not found: {path}")
        from .guided import load_guided

        unet, schedule = load_guided(path, flags)
        return DiffusionModel(unet, schedule, str(path))
    if path.is_dir():
        return _from_diffusers(path, _unet_subfolder(path))
    if path.suffix or spec.count("/") != 1 or path.exists():
        raise ConfigError(f"--diffusion {spec}: not found; give {TINY_DIFFUSION}, a diffusers UNet2DModel folder, "
                          "a guided-diffusion .pt file, or a hub id such as owner/name")
    require_cached(spec, "diffusion model", WAY_OUT, ("config.json", "unet/config.json"))
    return _from_diffusers(spec, _hub_subfolder(spec))


def load_diffusion(spec: str, flags: str | None = None, device: str | torch.device | None = None) -> DiffusionModel:
    """A frozen diffusion model from ``spec`` (see the module docstring), on ``device`` (None:
    wherever it is, the CPU when first loaded); the last two loaded stay in memory (variations
    and jobs reuse them, without a trip to the CPU and back).

    Args:
        spec: the model.
        flags: a guided-diffusion ``.pt``'s model flags ("--image_size 256 --num_channels 256 ...").
    Raises:
        ConfigError: in one line, for a missing, unreadable or unsupported model.
    """
    model = _load(spec, flags, file_stamp(spec))
    return model if device is None else model.to(device)


def range_penalty(x0: Tensor) -> Tensor:
    """Mean squared distance of x0 [B, 3, H, W] (model range) outside [-1, 1] (Disco's range loss)."""
    return (x0 - x0.clamp(-1, 1)).pow(2).mean()


def tv_penalty(x0: Tensor) -> Tensor:
    """Mean squared difference of neighbouring pixels of x0 [B, 3, H, W] (total variation)."""
    padded = F.pad(x0, (0, 1, 0, 1), mode="replicate")
    dx = padded[..., :-1, 1:] - padded[..., :-1, :-1]
    dy = padded[..., 1:, :-1] - padded[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2)).mean()


@dataclass(frozen=True)
class Guidance:
    """What steers the sampler.

    Attributes:
        score: ``score(picture, step) -> (loss, parts)``: the CLIP loss of a picture [1, 3, H, W]
            in [0, 1] at sampling step ``step`` (0-based), differentiable wrt the picture.
        scale: guidance scale (0: unguided; the loss is still computed, for the record).
        range_weight: weight of :func:`range_penalty` in the loss.
        tv_weight: weight of :func:`tv_penalty` in the loss.
    """

    score: Callable[[Tensor, int], tuple[Tensor, dict[str, float]]]
    scale: float = 1.0
    range_weight: float = 0.0
    tv_weight: float = 0.0

    def loss(self, x0: Tensor, step: int) -> tuple[Tensor, dict[str, float]]:
        """Total loss of a predicted clean picture x0 [1, 3, H, W] in the model's range [-1, 1]."""
        clip_loss, _ = self.score((x0 + 1) / 2, step)
        total = clip_loss
        parts = {"clip": float(clip_loss.detach())}
        for name, weight, penalty in (("range", self.range_weight, range_penalty), ("tv", self.tv_weight, tv_penalty)):
            if weight:
                value = penalty(x0)
                parts[name] = float(value.detach())
                total = total + weight * value
        return total, parts


@dataclass(frozen=True)
class SampleStep:
    """One sampling step's outcome.

    Attributes:
        index: 0-based step of this run (after the skipped ones).
        total: steps this run takes.
        sample: [1, 3, H, W] x at the next timestep (the finished picture after the last step),
            model range.
        predicted: [1, 3, H, W] the step's (guided) predicted clean picture, model range [-1, 1].
        loss: the guidance loss of the step's prediction (NaN without guidance).
        parts: its terms ("clip", "range", "tv").
    """

    index: int
    total: int
    sample: Tensor
    predicted: Tensor
    loss: float
    parts: dict[str, float]


def start_sample(scheduler, size: tuple[int, int], timestep: Tensor, generator: torch.Generator,
                 init: Tensor | None = None) -> Tensor:
    """x at the first timestep: pure noise [1, 3, H, W], or ``init`` ([3, H, W] in [0, 1]) noised to
    ``timestep`` (drawn on the CPU from ``generator``, so a seed gives the same picture everywhere)."""
    noise = torch.randn((1, 3, *size), generator=generator)
    if init is None:
        return noise * scheduler.init_noise_sigma
    clean = resize_image(init.float(), size)[None] * 2 - 1
    return scheduler.add_noise(clean, noise, timestep.reshape(1))


def _guided_noise(model: DiffusionModel, x: Tensor, t: Tensor, alpha_bar: Tensor, guidance: Guidance | None,
                  step: int) -> tuple[Tensor, float, dict[str, float]]:
    """The step's noise prediction [1, 3, H, W], shifted by the guidance gradient, and its loss."""
    if guidance is None:
        with torch.no_grad():
            return model.noise(x, t, alpha_bar), float("nan"), {}
    steer = guidance.scale > 0
    x = x.detach().requires_grad_(steer)
    with torch.set_grad_enabled(steer):
        eps = model.noise(x, t, alpha_bar)
        x0 = (x - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
        loss, parts = guidance.loss(x0, step)
    if not steer:
        return eps, float(loss), parts
    area = x.shape[-2] * x.shape[-1]
    (grad,) = torch.autograd.grad(loss, x)
    return eps.detach() + (1 - alpha_bar).sqrt() * guidance.scale * area * grad, float(loss.detach()), parts


def sample(model: DiffusionModel, guidance: Guidance | None, *, steps: int, size: tuple[int, int] | None = None,
           skip_steps: int = 0, init: Tensor | None = None, eta: float = 0.0,
           generator: torch.Generator | None = None) -> Iterator[SampleStep]:
    """CLIP-guided DDIM sampling, one :class:`SampleStep` per step.

    Args:
        model: the diffusion model (its device is where sampling runs).
        guidance: what steers it; None: plain unguided sampling (no loss).
        steps: DDIM steps over the whole schedule.
        size: (H, W) of the picture; default the model's own.
        skip_steps: steps left out at the start (the first ``skip_steps`` of ``steps``): the run
            starts from ``init`` noised to the first remaining timestep.
        init: [3, H, W] in [0, 1], needed with ``skip_steps``.
        eta: DDIM's eta (0: deterministic given the starting noise).
        generator: CPU random source of the starting noise (and eta's noise).
    """
    scheduler = model.scheduler(steps)
    timesteps = scheduler.timesteps[skip_steps:]
    device = next(model.unet.parameters()).device
    x = start_sample(scheduler, size or model.size, timesteps[0], generator, init).to(device)
    alphas = scheduler.alphas_cumprod.to(device)
    for index, t in enumerate(timesteps):
        eps, loss, parts = _guided_noise(model, x, t.to(device), alphas[t], guidance, index)
        # the noise re-derived from the clipped x0 (as guided-diffusion does), so that a clipped
        # prediction cannot turn the guidance's shift of the noise against it
        out = scheduler.step(eps, int(t), x.detach(), eta=eta, use_clipped_model_output=True, generator=generator)
        x = out.prev_sample
        yield SampleStep(index, len(timesteps), x, out.pred_original_sample, loss, parts)
