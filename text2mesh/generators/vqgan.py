"""The ``vqgan`` generator: a picture decoded by a VQGAN from a grid of latent codes; its models
loaded, and taming-transformers checkpoints mapped onto diffusers' ``VQModel`` (the same
architecture; no network is written here). diffusers is imported only when a model loads.

Where a model comes from (:func:`load_vqgan`):

- ``text2mesh-tiny-vqgan``: the project's own small VQ autoencoder (``text2mesh/assets``),
  trained by ``scripts/train_tiny_vqgan.py`` on its synthetic pictures;
- a taming-transformers checkpoint: ``model.ckpt`` with its ``model.yaml`` next to it (or given
  as ``model.ckpt:model.yaml``), e.g. ``vqgan_imagenet_f16_16384``;
- a diffusers ``VQModel`` folder (``config.json`` + weights) or a Hugging Face hub id, through
  the normal cache (offline without it: one line saying what to pass).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..guidance.clip import ASSETS_DIR
from .base import Canvas, resize_image, working_size
from .pretrained import (
    file_stamp,
    frozen_pretrained,
    load_renamed,
    read_checkpoint,
    require_cached,
)
from .settings import TINY_VQGAN, check_generator_settings

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "LR",
    "TINY_VQGAN",
    "VQGANCanvas",
    "build",
    "load_taming",
    "load_vqgan",
    "taming_key",
    "taming_state_dict",
    "taming_to_diffusers_config",
    "tiny_vqgan_path",
    "vqgan_canvas",
]

LR = 0.1
VQGAN_WAY_OUT = f"a local folder or {TINY_VQGAN}"


def tiny_vqgan_path() -> Path:
    """The shipped tiny VQ autoencoder (a diffusers VQModel folder)."""
    return ASSETS_DIR / TINY_VQGAN


def _vq_model_class():
    try:
        from diffusers import VQModel
    except ImportError:
        raise ConfigError('the vqgan generator needs diffusers: pip install diffusers') from None
    return VQModel


def taming_to_diffusers_config(params: dict[str, Any]) -> dict[str, Any]:
    """A diffusers VQModel config equal to a taming ``VQModel``'s ``model.params``
    (``embed_dim``, ``n_embed``, ``ddconfig``)."""
    try:
        dd = params["ddconfig"]
        mult, ch, res = list(dd["ch_mult"]), int(dd["ch"]), int(dd["resolution"])
        attn = set(dd.get("attn_resolutions", []))
        levels = [res // 2**i for i in range(len(mult))]
        down = ["AttnDownEncoderBlock2D" if r in attn else "DownEncoderBlock2D" for r in levels]
        up = ["AttnUpDecoderBlock2D" if r in attn else "UpDecoderBlock2D" for r in reversed(levels)]
        return {
            "in_channels": int(dd.get("in_channels", 3)),
            "out_channels": int(dd.get("out_ch", 3)),
            "down_block_types": down,
            "up_block_types": up,
            "block_out_channels": [ch * m for m in mult],
            "layers_per_block": int(dd["num_res_blocks"]),
            "latent_channels": int(dd["z_channels"]),
            "num_vq_embeddings": int(params["n_embed"]),
            "vq_embed_dim": int(params["embed_dim"]),
            "norm_num_groups": 32,
            "sample_size": res,
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"the VQGAN yaml lacks model.params.{exc} (ddconfig, n_embed, embed_dim)") from None


_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def taming_key(key: str, levels: int) -> str | None:
    """The diffusers VQModel name of a taming state-dict key (None: not part of the VQ model,
    e.g. the discriminator and perceptual loss of a training checkpoint)."""
    head = key.split(".")[0]
    if head in ("quantize", "quant_conv", "post_quant_conv"):
        return key
    if head not in ("encoder", "decoder"):
        return None
    key = re.sub(r"\.mid\.block_(\d)\.", lambda m: f".mid_block.resnets.{int(m.group(1)) - 1}.", key)
    key = key.replace(".mid.attn_1.", ".mid_block.attentions.0.")
    key = re.sub(r"\.down\.(\d+)\.block\.", r".down_blocks.\1.resnets.", key)
    key = re.sub(r"\.down\.(\d+)\.attn\.", r".down_blocks.\1.attentions.", key)
    key = re.sub(r"\.down\.(\d+)\.downsample\.", r".down_blocks.\1.downsamplers.0.", key)
    up = lambda m: f".up_blocks.{levels - 1 - int(m.group(1))}.{m.group(2)}"  # taming counts up levels from the bottom
    key = re.sub(r"\.up\.(\d+)\.(block|attn|upsample)\.", lambda m: up(m) + ".", key)
    key = key.replace(".block.", ".resnets.").replace(".attn.", ".attentions.").replace(".upsample.", ".upsamplers.0.")
    key = key.replace(".nin_shortcut.", ".conv_shortcut.").replace(".norm_out.", ".conv_norm_out.")
    if ".attentions." in key or ".attn_1." in key:
        stem, _, leaf = key.rpartition(".")
        stem, _, part = stem.rpartition(".")
        key = f"{stem}.{_ATTENTION.get(part, part)}.{leaf}"
    return key


def taming_state_dict(state: dict[str, Tensor], levels: int) -> dict[str, Tensor]:
    """A taming VQModel state dict renamed for diffusers (attention 1x1 convs as linear weights)."""
    out = {}
    for key, value in state.items():
        name = taming_key(key, levels)
        if name is None:
            continue
        if any(f".{n}.weight" in name for n in ("to_q", "to_k", "to_v", "to_out.0")) and value.ndim == 4:
            value = value[:, :, 0, 0]
        out[name] = value
    return out


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
        return data["model"]["params"]
    except FileNotFoundError:
        raise ConfigError(f"VQGAN config not found: {path}; a taming .ckpt needs its .yaml (model.ckpt:model.yaml)") from None
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read VQGAN config {path}: {str(exc).splitlines()[0]} (expected model.params)") from None


def load_taming(checkpoint: Path, config: Path, device: str | torch.device = "cpu"):
    """A taming-transformers VQGAN (``.ckpt`` + ``.yaml``) as a diffusers VQModel."""
    model = _vq_model_class()(**taming_to_diffusers_config(_read_yaml(config)))
    state = read_checkpoint(checkpoint, "VQGAN checkpoint", weights_only=False)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    mapped = taming_state_dict(state, len(model.config.block_out_channels))
    return load_renamed(model, mapped, f"{checkpoint} does not match {config}",
                        "give the yaml that came with the checkpoint").to(device)


def load_vqgan(spec: str, device: str | torch.device | None = None):
    """A frozen diffusers VQModel from ``spec`` (see the module docstring), on ``device`` (None:
    wherever it is, the CPU when first loaded). The last two loaded stay in memory, so variations
    and jobs read a checkpoint once (a replaced file is read again)."""
    model = _load(spec, file_stamp(_split_spec(spec)[0]))
    return model if device is None else model.to(device)


def _split_spec(spec: str) -> tuple[str, str]:
    """(model, taming yaml or "") of ``spec``: ``model.ckpt:other.yaml`` names the yaml."""
    checkpoint, _, config = spec.partition(":") if spec.count(":") == 1 and ".ckpt:" in spec else (spec, "", "")
    return checkpoint, config


@functools.lru_cache(maxsize=2)
def _load(spec: str, stamp: int | None):
    VQModel = _vq_model_class()
    if spec == TINY_VQGAN:
        return frozen_pretrained(VQModel, tiny_vqgan_path(), "VQGAN", VQGAN_WAY_OUT)
    checkpoint, config = _split_spec(spec)
    path = Path(checkpoint).expanduser()
    if path.suffix == ".ckpt":
        if not path.is_file():
            raise ConfigError(f"VQGAN checkpoint not found: {path}")
        return load_taming(path, Path(config) if config else path.with_suffix(".yaml"))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a diffusers VQModel folder (no config.json)")
        return frozen_pretrained(VQModel, path, "VQGAN", VQGAN_WAY_OUT)
    if path.suffix or "/" not in spec:
        raise ConfigError(f"--vqgan {spec}: give {TINY_VQGAN}, a taming model.ckpt (with its model.yaml), "
                          "a diffusers VQModel folder, or a hub id such as owner/name")
    require_cached(spec, "VQGAN", VQGAN_WAY_OUT)
    return frozen_pretrained(VQModel, spec, "VQGAN", VQGAN_WAY_OUT)


def upscale(model) -> int:
    """How many pixels a latent covers along each side: 2 per level after the first."""
    return 2 ** (len(model.config.block_out_channels) - 1)


def _quantize_straight_through(z: Tensor, codebook: Tensor) -> Tensor:
    """Each latent vector replaced by its nearest code, gradients passed through to ``z``
    unchanged (as the VQGAN-CLIP scripts do). z: [1, D, h, w]; codebook: [K, D]."""
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    nearest = torch.cdist(flat, codebook).argmin(1)
    quantized = codebook[nearest].reshape(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
    return z + (quantized - z).detach()


def _clamp_straight_through(x: Tensor) -> Tensor:
    """x clamped to [0, 1] with the gradient of the identity, so saturated pixels still learn."""
    return x + (x.clamp(0, 1) - x).detach()


class VQGANCanvas(Canvas):
    """A picture decoded by a VQGAN from a grid of latent vectors, the parameters.

    The latents stay continuous under Adam and are snapped to their nearest codes before
    decoding (straight-through), as in the VQGAN-CLIP scripts: the decoder only ever sees the
    codes it was trained on, and a small step in latent space (``vary``) may or may not change
    a code. The decoder's output is clamped to [0, 1] with a straight-through gradient, so a
    saturated picture keeps a gradient (no collapse to a flat colour).

    Args:
        model: a frozen diffusers VQModel (:func:`load_vqgan`); not saved with the canvas.
        grid: (h, w) of the latent grid (the picture is ``2**(levels - 1)`` times larger).
        init: optional [3, H, W] init image in [0, 1], encoded to the starting latents.
        generator: CPU random source for the random starting codes.
    """

    kind = "vqgan"

    def __init__(self, model, grid: tuple[int, int], *, init: Tensor | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(init)
        self.__dict__["model"] = model  # kept out of state_dict and parameters: frozen, and large
        codebook = self.codebook
        if init is not None:
            with torch.no_grad():
                scale = upscale(model)
                pixels = resize_image(init.float(), (grid[0] * scale, grid[1] * scale))[None] * 2 - 1
                start = model.quant_conv(model.encoder(pixels.to(codebook.device)))
        else:
            codes = torch.randint(0, len(codebook), (grid[0] * grid[1],), generator=generator)
            start = codebook[codes.to(codebook.device)].reshape(1, grid[0], grid[1], -1).permute(0, 3, 1, 2)
        self.z = nn.Parameter(start.detach().clone().cpu())

    @property
    def codebook(self) -> Tensor:
        """[K, D] the model's code vectors."""
        return self.model.quantize.embedding.weight

    def _apply(self, fn, *args, **kwargs):
        self.model._apply(fn)
        return super()._apply(fn, *args, **kwargs)

    def texture(self, size: tuple[int, int], progress: float = 1.0) -> Tensor:
        quantized = _quantize_straight_through(self.z, self.codebook)
        decoded = self.model.decode(quantized, force_not_quantize=True).sample
        picture = _clamp_straight_through((decoded[0] + 1) / 2)
        return resize_image(picture, size)


def vqgan_canvas(spec: str, size: tuple[int, int], *, init: Tensor | None = None,
                 generator: torch.Generator | None = None) -> VQGANCanvas:
    """A VQGAN canvas whose decoded picture covers ``size`` = (H, W)."""
    model = load_vqgan(spec)
    scale = upscale(model)
    grid = (max(1, round(size[0] / scale)), max(1, round(size[1] / scale)))
    return VQGANCanvas(model, grid, init=init, generator=generator)


def build(cfg: Config, init: Tensor | None, generator: torch.Generator) -> VQGANCanvas:
    """The run's VQGAN canvas: ``imagine.vqgan``'s model, its latent grid covering the working size."""
    check_generator_settings(cfg)
    return vqgan_canvas(cfg.imagine.vqgan, working_size(cfg), init=init, generator=generator)
