"""OpenAI guided-diffusion checkpoints (Dhariwal & Nichol's ``.pt`` files, e.g.
``256x256_diffusion_uncond.pt``) mapped onto an equivalent diffusers ``UNet2DModel``.

guided-diffusion's ``UNetModel`` and diffusers' ``UNet2DModel`` are the same network: a sinusoidal
timestep embedding ([cos, sin], max period 10000) through two linear layers; per level
``num_res_blocks`` residual blocks (FiLM-like ``scale_shift`` conditioning with
``use_scale_shift_norm``), each followed by self-attention at the levels of
``attention_resolutions``; down/upsampling by strided convolutions or, with ``resblock_updown``,
by residual blocks; a middle block of residual, attention, residual. A checkpoint's model flags
(the ``MODEL_FLAGS`` its README publishes) give the diffusers config (:func:`unet_config`) and the
diffusion's noise schedule (:func:`scheduler_config`); its weights are renamed
(:func:`diffusers_state_dict`: attention ``qkv`` projections split into ``to_q``/``to_k``/``to_v``,
1x1 convolutions of the attention as linear layers). With ``learn_sigma`` the model has 6 output
channels: epsilon and the variance interpolation, of which DDIM uses the first 3.

What does not map, and why (each answered in one line):

- ``channel_mult`` starting below 1, as the 512x512 models have (``0.5, 1, 1, 2, 2, 4, 4``, Disco
  Diffusion's ``512x512_diffusion_uncond_finetune_008100.pt`` too): guided-diffusion sizes its
  timestep embedding from ``num_channels`` and its first level from ``0.5 x num_channels``;
  ``UNet2DModel`` ties both to ``block_out_channels[0]``, so the shapes cannot be matched.
- ``class_cond``: class-conditional models need a class label at every step; CLIP guidance here
  drives unconditional models only.
- ``num_heads`` > 1 without ``num_head_channels``: the head width would change per level, and
  ``UNet2DModel`` has one ``attention_head_dim`` for all levels (one head, or a fixed width, maps).
- ``conv_resample False`` (pooling instead of strided convolutions) has no ``UNet2DModel`` block.
"""

from __future__ import annotations

import shlex
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .pretrained import load_renamed, read_checkpoint

__all__ = ["KNOWN_FLAGS", "diffusers_state_dict", "load_guided", "parse_flags", "scheduler_config", "unet_config"]

_LSUN = ("--attention_resolutions 32,16,8 --class_cond False --diffusion_steps 1000 --dropout 0.1 --image_size 256 "
         "--learn_sigma True --noise_schedule linear --num_channels 256 --num_head_channels 64 --num_res_blocks 2 "
         "--resblock_updown True --use_fp16 True --use_scale_shift_norm True")
# The model flags published with the unconditional checkpoints, by file name.
KNOWN_FLAGS = {
    "256x256_diffusion_uncond.pt": _LSUN.replace("--dropout 0.1 ", ""),
    "lsun_bedroom.pt": _LSUN,
    "lsun_cat.pt": _LSUN,
    "lsun_horse.pt": _LSUN,
    "lsun_horse_nodropout.pt": _LSUN.replace("--dropout 0.1 ", ""),
}
DEFAULTS: dict[str, Any] = {  # guided_diffusion.script_util's defaults for the flags used here
    "num_res_blocks": 2, "num_heads": 4, "num_heads_upsample": -1, "num_head_channels": -1,
    "attention_resolutions": "16,8", "channel_mult": "", "class_cond": False, "use_scale_shift_norm": True,
    "resblock_updown": False, "use_new_attention_order": False, "learn_sigma": False, "diffusion_steps": 1000,
    "noise_schedule": "linear", "predict_xstart": False, "rescale_timesteps": False, "conv_resample": True,
}
_CHANNEL_MULT = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}
_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


def _value(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_flags(flags: str) -> dict[str, Any]:
    """``"--image_size 256 --learn_sigma True ..."`` (a README's MODEL_FLAGS) -> the flags with
    guided-diffusion's defaults for the rest; ConfigError for text that is not ``--name value`` pairs."""
    words = shlex.split(flags)
    if len(words) % 2 or not all(w.startswith("--") for w in words[::2]):
        raise ConfigError(f"guided-diffusion flags must be --name value pairs (as published with the model), got {flags!r}")
    parsed = {**DEFAULTS, **{name[2:]: _value(value) for name, value in zip(words[::2], words[1::2])}}
    if "image_size" not in parsed or "num_channels" not in parsed:
        raise ConfigError("guided-diffusion flags need at least --image_size and --num_channels")
    return parsed


def _channel_mult(flags: dict[str, Any]) -> tuple[float, ...]:
    if flags["channel_mult"]:
        return tuple(float(m) for m in str(flags["channel_mult"]).split(","))
    size = int(flags["image_size"])
    if size not in _CHANNEL_MULT:
        raise ConfigError(f"guided-diffusion --image_size {size} has no default channel_mult; give --channel_mult")
    return _CHANNEL_MULT[size]


def _attention_levels(flags: dict[str, Any], levels: int) -> list[bool]:
    """Per level (0: full size): whether its blocks have attention."""
    rates = {int(flags["image_size"]) // int(r) for r in str(flags["attention_resolutions"]).split(",") if r}
    return [2**level in rates for level in range(levels)]


def _check_mappable(flags: dict[str, Any], mult: tuple[float, ...]) -> None:
    if mult[0] != 1:
        raise ConfigError(f"this guided-diffusion model (channel_mult {','.join(f'{m:g}' for m in mult)}) cannot be "
                          "mapped onto a diffusers UNet2DModel: its first level is narrower than its timestep "
                          "embedding (the 512x512 models are)")
    if flags["class_cond"]:
        raise ConfigError("class-conditional guided-diffusion models are not supported; use an unconditional one "
                          "(e.g. 256x256_diffusion_uncond.pt)")
    if flags["num_head_channels"] == -1 and flags["num_heads"] != 1:
        raise ConfigError("guided-diffusion models with --num_heads > 1 and no --num_head_channels cannot be mapped "
                          "onto a UNet2DModel (its attention heads have one width at every level)")
    if not flags["conv_resample"] or flags["rescale_timesteps"] and flags["diffusion_steps"] != 1000:
        raise ConfigError("guided-diffusion models with conv_resample False or rescaled timesteps are not supported")


def unet_config(flags: dict[str, Any]) -> dict[str, Any]:
    """The ``UNet2DModel`` keyword arguments of a guided-diffusion model's parsed flags."""
    mult = _channel_mult(flags)
    _check_mappable(flags, mult)
    attention = _attention_levels(flags, len(mult))
    down = "ResnetDownsampleBlock2D" if flags["resblock_updown"] else "DownBlock2D"
    up = "ResnetUpsampleBlock2D" if flags["resblock_updown"] else "UpBlock2D"
    resample = "resnet" if flags["resblock_updown"] else "conv"
    heads = int(flags["num_head_channels"])
    return {
        "sample_size": int(flags["image_size"]),
        "in_channels": 3,
        "out_channels": 6 if flags["learn_sigma"] else 3,
        "block_out_channels": [int(m * flags["num_channels"]) for m in mult],
        "layers_per_block": int(flags["num_res_blocks"]),
        "down_block_types": ["AttnDownBlock2D" if a else down for a in attention],
        "up_block_types": ["AttnUpBlock2D" if a else up for a in reversed(attention)],
        "downsample_type": resample,
        "upsample_type": resample,
        "attention_head_dim": heads if heads > 0 else None,
        "norm_num_groups": 32,
        "attn_norm_num_groups": 32,  # the middle attention has its group norm under scale_shift too
        "resnet_time_scale_shift": "scale_shift" if flags["use_scale_shift_norm"] else "default",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    }


def scheduler_config(flags: dict[str, Any]) -> dict[str, Any]:
    """The diffusers scheduler config of the model's diffusion (its training noise schedule)."""
    schedule = _SCHEDULES.get(str(flags["noise_schedule"]))
    if schedule is None:
        raise ConfigError(f"guided-diffusion --noise_schedule {flags['noise_schedule']} is not one of {', '.join(_SCHEDULES)}")
    steps = int(flags["diffusion_steps"])
    return {"num_train_timesteps": steps, "beta_schedule": schedule, "beta_start": 0.1 / steps, "beta_end": 20 / steps,
            "prediction_type": "sample" if flags["predict_xstart"] else "epsilon", "clip_sample": True}


def _block_names(flags: dict[str, Any]) -> dict[str, str]:
    """guided-diffusion module path -> diffusers module path, for every block of the network."""
    mult = _channel_mult(flags)
    attention = _attention_levels(flags, len(mult))
    per_level = int(flags["num_res_blocks"])
    names = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
             "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out",
             "middle_block.0": "mid_block.resnets.0", "middle_block.1": "mid_block.attentions.0",
             "middle_block.2": "mid_block.resnets.1"}
    k = 1
    for level in range(len(mult)):
        for i in range(per_level):
            names[f"input_blocks.{k}.0"] = f"down_blocks.{level}.resnets.{i}"
            names[f"input_blocks.{k}.1"] = f"down_blocks.{level}.attentions.{i}"
            k += 1
        if level < len(mult) - 1:
            names[f"input_blocks.{k}.0"] = f"down_blocks.{level}.downsamplers.0"
            k += 1
    k = 0
    for up, level in enumerate(reversed(range(len(mult)))):
        for i in range(per_level + 1):
            names[f"output_blocks.{k}.0"] = f"up_blocks.{up}.resnets.{i}"
            if attention[level]:
                names[f"output_blocks.{k}.1"] = f"up_blocks.{up}.attentions.{i}"
            if level and i == per_level:
                names[f"output_blocks.{k}.{2 if attention[level] else 1}"] = f"up_blocks.{up}.upsamplers.0"
            k += 1
    return names


_LAYERS = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj", "out_layers.0": "norm2",
           "out_layers.3": "conv2", "skip_connection": "conv_shortcut", "op": "conv", "conv": "conv",
           "norm": "group_norm", "proj_out": "to_out.0", "qkv": "qkv"}


def _split_qkv(weight: Tensor, heads: int, legacy: bool) -> list[Tensor]:
    """A [3C, C(, 1)] qkv projection -> [q, k, v], each [C, C(, 1)] with heads contiguous, as diffusers'
    ``to_q``/``to_k``/``to_v`` are. Legacy order interleaves per head (q, k, v of head 0, then head 1...)."""
    if not legacy:
        return list(weight.chunk(3))
    width = weight.shape[0] // (3 * heads)
    per_head = weight.reshape(heads, 3, width, *weight.shape[1:])
    return [per_head[:, j].reshape(heads * width, *weight.shape[1:]) for j in range(3)]


def diffusers_state_dict(state: dict[str, Tensor], flags: dict[str, Any]) -> dict[str, Tensor]:
    """A guided-diffusion state dict renamed for :func:`unet_config`'s ``UNet2DModel``, float32.

    Keys it does not know are kept as they are, so that loading reports them as unexpected.
    """
    names = _block_names(flags)
    config = unet_config(flags)
    head_width = config["attention_head_dim"]
    legacy = not flags["use_new_attention_order"]
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        value = value.float()
        parts = key.split(".")
        block = next((".".join(parts[:n]) for n in (3, 2) if ".".join(parts[:n]) in names), None)
        if block is None:
            out[key] = value
            continue
        target = names[block]
        rest = key[len(block) + 1 :]
        layer, _, leaf = rest.rpartition(".")
        if not layer:  # conv_in, conv_out, time embedding, norm out: the block is the layer
            out[f"{target}.{leaf}"] = value
            continue
        name = _LAYERS.get(layer, layer)
        if ".attentions." in target and value.ndim == 3:  # 1x1 convolutions over the flattened picture
            value = value[..., 0]
        if name == "qkv":
            heads = value.shape[0] // 3 // head_width if head_width else 1
            for proj, part in zip(("to_q", "to_k", "to_v"), _split_qkv(value, heads, legacy)):
                out[f"{target}.{proj}.{leaf}"] = part
        else:
            out[f"{target}.{name}.{leaf}"] = value
    return out


def load_guided(path, flags_text: str | None, device: str | torch.device = "cpu"):
    """A guided-diffusion ``.pt`` file as (a frozen ``UNet2DModel``, its scheduler config).

    Args:
        path: the checkpoint (a state dict).
        flags_text: its model flags; None: the published flags of a known file name (:data:`KNOWN_FLAGS`).
    """
    from diffusers import UNet2DModel

    flags_text = flags_text or KNOWN_FLAGS.get(path.name)
    if not flags_text:
        raise ConfigError(f"{path.name} is not a known guided-diffusion checkpoint; give its model flags with "
                          "--diffusion-flags \"--image_size 256 --num_channels 256 ...\" (as published with it)")
    flags = parse_flags(flags_text)
    model = UNet2DModel(**unet_config(flags))
    state = read_checkpoint(path, "diffusion checkpoint")
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds no state dict of a guided-diffusion model")
    model = load_renamed(model, diffusers_state_dict(state, flags), f"{path.name} does not match its flags",
                         "give the flags published with the checkpoint")
    return model.to(device), scheduler_config(flags)
