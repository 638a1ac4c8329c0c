"""Typed configuration for every stage, loaded from YAML presets in ``configs/``.

A run's configuration is one :class:`Config` made of one dataclass per stage. Presets are YAML
files holding any subset of the fields (missing fields keep the defaults below); command-line
flags override single fields with dotted keys (``optim.iters=200``). The resolved config is
saved in every run folder so a run can be resumed or reproduced exactly.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError
from .generators import GENERATORS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class MeshConfig:
    """How the input mesh is loaded and prepared."""

    up_axis: Literal["x", "y", "z", "-x", "-y", "-z"] = "y"  # input axis that points up
    # input axis the object faces (turned to +z, where the presets look); None: as loaded
    front_axis: Literal["x", "y", "z", "-x", "-y", "-z"] | None = None
    rotate_degrees: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.0, 0.0])  # extra xyz Euler rotation
    clean: bool = True  # drop NaN/degenerate/duplicate faces, merge duplicate vertices
    max_edge: float | None = 0.045  # split edges longer than this (normalized units, radius 1; ~4 px in a 224² view); None: off
    max_faces: int | None = 200_000  # decimate above this many faces (keeps render + field fast); None: off
    use_input_colors: bool = False  # start from the file's vertex colours instead of grey


@dataclass
class ViewsConfig:
    """Which cameras see the mesh during optimization."""

    n_views: int = 5
    mode: Literal["front", "orbit"] = "front"  # jitter around a front view, or evenly around
    center_azimuth: float = math.pi / 2  # radians; pi/2 looks at the +z side (the front)
    center_elevation: float = 0.0  # radians
    std: float = 4.0  # jitter: azimuth sd 2pi/std, elevation sd pi/std
    radius: float = 2.0  # camera distance from the origin (mesh fits the unit sphere)
    fov_degrees: float = 60.0


@dataclass
class RenderConfig:
    """How renders for CLIP are drawn."""

    resolution: int = 224  # square render size before augmentation
    background: list[float] = dataclasses.field(default_factory=lambda: [1.0, 1.0, 1.0])
    lighting: Literal["sh", "unlit"] = "sh"
    # Blend the silhouette edges of the renders CLIP sees, which gives vertices gradients at
    # silhouettes. Off, as in the reference (its renderer fed none into the loss): with them a
    # colour-minded CLIP scores by covering more pixels. Measured with text2mesh-tiny, "a red
    # object", default preset, 60 iterations on meshes/human.obj: on, every vertex went to the
    # +normratio bound (volume x3.91, area x2.45 after re-normalization); off, volume x0.55.
    antialias: bool = False


@dataclass
class FieldConfig:
    """The neural style field (MLP over Fourier features)."""

    sigma: float = 5.0  # std of the Gaussian Fourier feature frequencies
    n_frequencies: int = 256
    width: int = 256
    depth: int = 4  # hidden layers in the shared trunk
    head_depth: int = 2  # hidden layers per head
    normratio: float = 0.1  # max |displacement| along the normal (normalized units)
    symmetry: bool = False  # feed |coordinate| along symmetry_axis so left/right halves match
    symmetry_axis: Literal["x", "y", "z"] = "x"  # mirror axis; x for a y-up mesh facing +z
    standardize: bool = False  # per-axis standardization of the inputs
    progressive: bool = False  # unmask frequency bands from low to high (the reference's object demos; see field/encoding.py)
    progressive_ramp: float = 0.06  # fraction of the run after which every band is unmasked (its demos: 6%)
    colors: bool = True  # predict colour
    displacement: bool = True  # predict displacement
    # Matrix products of the MLP: "bf16" autocast (fp32 weights and outputs), "fp32", or "auto":
    # bf16 on CUDA GPUs with bf16 and on CPUs with AMX tiles, where it is ~8x faster (measured:
    # 1.22 s -> 0.15 s fwd+bwd for the reference field on 24k vertices, 2 threads), else fp32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"


@dataclass
class GuidanceConfig:
    """CLIP model and the loss terms built on it."""

    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = "openai"
    clip_checkpoint: str | None = None
    n_augs: int = 1  # full-view augmentations per view
    n_local_augs: int = 4  # local-crop augmentations
    # Crop areas (min, max fraction of the image, drawn uniformly) of the local colour crops and
    # of the grey geometry crops. The reference draws neither: its crops are fixed at its flags'
    # max (colour) and min (geometry), 0.1/0.1 for objects and 0.4/0.1 for people.
    local_crop: list[float] = dataclasses.field(default_factory=lambda: [0.1, 0.1])
    geometry_crop: list[float] = dataclasses.field(default_factory=lambda: [0.1, 0.1])
    # what the perspective warp uncovers: white, as the reference (whatever the background); null: the background
    fill: list[float] | None = dataclasses.field(default_factory=lambda: [1.0, 1.0, 1.0])
    perspective_distortion: float = 0.5
    perspective_p: float = 0.8
    geometry_loss: bool = True  # local crops of grey renders judge displacements
    # Each term is a sum over its augmentations (one -cos each, as the reference), times its weight.
    full_weight: float = 1.0
    local_weight: float = 1.0
    geometry_weight: float = 1.0
    averaging: Literal["views", "none"] = "views"  # average embeddings over views before cosine
    clip_batch: int | None = None  # images per CLIP call; None: all of an iteration's images in one call


@dataclass
class OptimConfig:
    """The optimization loop."""

    iters: int = 1500
    lr: float = 5e-4
    lr_decay: float = 0.9
    decay_step: int = 100
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    snapshot_every: int = 100  # progress renders; 0: off
    checkpoint_every: int = 50


@dataclass
class OutputConfig:
    """What a finished run writes."""

    formats: list[str] = dataclasses.field(default_factory=lambda: ["obj", "ply"])
    n_final_views: int = 4
    final_resolution: int = 512
    turntable: bool = True
    before_after: bool = True


@dataclass
class ImagineConfig:
    """The 2D mode (``imagine``): which canvas, how large, and the cutouts CLIP sees."""

    generator: Literal[GENERATORS] = "field"  # what parametrizes the picture (text2mesh.generators.REGISTRY)
    vqgan: str | None = None  # vqgan: text2mesh-tiny-vqgan, a taming model.ckpt (+ .yaml), a diffusers VQModel folder or hub id
    # diffusion: text2mesh-tiny-diffusion, a diffusers UNet2DModel folder or hub id, or a guided-diffusion .pt;
    # it samples at the model's own size (imagine.size resizes the result)
    diffusion: str | None = None
    diffusion_flags: str | None = None  # diffusion: a guided-diffusion .pt's model flags ("--image_size 256 ..."), unless a published one
    steps: int = 50  # diffusion: DDIM steps over the model's schedule
    # diffusion: strength of the CLIP gradient on the noisy sample (per pixel of area: one scale for any size); 0: unguided
    guidance_scale: float = 0.5
    skip_steps: int = 0  # diffusion: start this many steps in, from the --init-image noised to that step
    range_weight: float = 0.0  # diffusion: penalty on predicted pixels outside the colour range (Disco's range loss)
    tv_weight: float = 0.0  # diffusion: total-variation penalty on the predicted picture (smoothness)
    eta: float = 0.0  # diffusion: DDIM's eta (0: deterministic from the starting noise; 1: DDPM-like fresh noise)
    size: list[int] = dataclasses.field(default_factory=lambda: [512, 512])  # output width, height
    render_size: int = 224  # shorter side of the picture while optimizing (<= the output's)
    lr: float | None = None  # None: field 3e-5, pixels 0.05, strokes 0.01, vqgan 0.1 (optim.lr is the 3D field's)
    pixel_resolution: int = 24  # pixels: shorter side of the free colour grid (bicubic upsampling)
    pixel_levels: int = 5  # pixels: grids summed at resolution, /2, /4, ... (1: one plain grid, which a small CLIP fools)
    n_strokes: int = 64  # strokes: number of brush strokes
    stroke_width: list[float] = dataclasses.field(default_factory=lambda: [0.02, 0.08])  # initial widths, fraction of the shorter side
    n_cutouts: int = 16  # random square crops CLIP sees per step (the first is the whole picture)
    cutout_start: list[float] = dataclasses.field(default_factory=lambda: [0.6, 1.0])  # crop sizes (min, max) at the first step, fraction of the shorter side
    cutout_end: list[float] = dataclasses.field(default_factory=lambda: [0.2, 0.6])  # crop sizes at the last step
    init_image: str | None = None  # start from this picture
    gif_frames: int = 24  # frames of progress.gif (and of strokes.gif)
    prompt_schedule: list[str] = dataclasses.field(default_factory=list)  # story mode: main prompts in turn ("a seed", "a sprout", ...)
    change_every: int = 50  # iterations per prompt of prompt_schedule (the last one stays)


@dataclass
class Config:
    """Everything a stylization run needs besides the mesh and the prompts."""

    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
    views: ViewsConfig = dataclasses.field(default_factory=ViewsConfig)
    render: RenderConfig = dataclasses.field(default_factory=RenderConfig)
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    guidance: GuidanceConfig = dataclasses.field(default_factory=GuidanceConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    imagine: ImagineConfig = dataclasses.field(default_factory=ImagineConfig)
    prompts: list[str] = dataclasses.field(default_factory=list)  # "text" or "text:weight"; set per run
    image_prompts: list[str] = dataclasses.field(default_factory=list)  # "file" or "file:weight"
    negatives: list[str] = dataclasses.field(default_factory=list)  # texts with weight -1
    mesh_path: str | None = None  # the preset's default mesh (demo presets)


def _type_check(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value against a dataclass field type; raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _type_check(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_type_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


# Allowed ranges (inclusive) of the numbers a user may well get wrong; list fields apply the
# range to every item. Values outside would fail deep inside a run (division by zero, a
# renderer refusing the image size) instead of here with the field's name. (The 2D picture's
# sizes are checked where they are used, in terms of the imagine command's options.)
MAX_IMAGE_SIDE = 8192  # imagine's pictures: the longest side, in pixels
_LIMITS: dict[str, tuple[float, float]] = {
    "views.n_views": (1, 64),
    "views.radius": (1e-3, 1e3),
    "views.fov_degrees": (1, 179),
    "render.resolution": (16, 4096),
    "field.n_frequencies": (1, 65536),
    "field.width": (1, 65536),
    "field.depth": (0, 64),
    "field.head_depth": (0, 64),
    "field.progressive_ramp": (1e-6, 1),
    "guidance.n_augs": (0, 1024),
    "guidance.n_local_augs": (0, 1024),
    "guidance.local_crop": (1e-4, 1),
    "guidance.geometry_crop": (1e-4, 1),
    "guidance.fill": (0, 1),
    "guidance.clip_batch": (1, 1 << 20),
    "optim.iters": (0, 10_000_000),
    "optim.lr": (0, 10),
    "optim.decay_step": (1, 10_000_000),
    "optim.snapshot_every": (0, 10_000_000),
    "optim.checkpoint_every": (0, 10_000_000),
    "output.n_final_views": (0, 64),
    "output.final_resolution": (16, 4096),
    "imagine.size": (1, MAX_IMAGE_SIDE),
    "imagine.render_size": (8, 4096),
    "imagine.pixel_resolution": (1, 4096),
    "imagine.pixel_levels": (1, 16),
    "imagine.n_strokes": (1, 100_000),
    "imagine.n_cutouts": (1, 1024),
    "imagine.steps": (1, 100_000),
    "imagine.guidance_scale": (0, 1e9),
    "imagine.skip_steps": (0, 100_000),
    "imagine.range_weight": (0, 1e9),
    "imagine.tv_weight": (0, 1e9),
    "imagine.eta": (0, 1),
}


def _check_range(value: Any, key: str) -> None:
    """Raise ConfigError when a number (or a list's item) is outside ``_LIMITS[key]``."""
    limits = _LIMITS.get(key)
    if limits is None or value is None:
        return
    low, high = limits
    for item in value if isinstance(value, list) else [value]:
        if not low <= item <= high:
            raise ConfigError(f"{key}: {item!r} is outside the allowed range {low:g} to {high:g}")


def _from_dict(cls: type, data: dict, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown config key {where + '.' if where else ''}{min(unknown)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _from_dict(tp, value or {}, key)
        else:
            kwargs[name] = _type_check(value, tp, key)
            _check_range(kwargs[name], key)
    return cls(**kwargs)


def config_from_dict(data: dict) -> Config:
    """Build a Config from a (partial) nested dict; unknown keys and bad types raise ConfigError."""
    return _from_dict(Config, data or {}, "")


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def merge_dicts(base: dict, override: dict) -> dict:
    """Recursive dict merge (override wins)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigError(f"cannot read config {path}: {reason}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of sections")
    return data


def list_presets() -> list[str]:
    """Names of the YAML presets in ``configs/``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def preset_dict(name: str) -> dict:
    """The raw (partial) dict of a preset; presets may name a ``base:`` preset to extend."""
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
    data = _read_yaml(path)
    base = data.pop("base", None)
    return merge_dicts(preset_dict(base), data) if base else data


def load_config(
    preset: str | None = None, path: str | Path | None = None, overrides: dict | None = None
) -> Config:
    """Resolve a config: defaults <- preset (or YAML file) <- overrides (a partial nested dict)."""
    data: dict = {}
    if preset is not None and path is not None:
        raise ConfigError("give either a preset or a config file, not both")
    if preset is not None:
        data = preset_dict(preset)
    elif path is not None:
        data = _read_yaml(Path(path))
        base = data.pop("base", None)
        if base:
            data = merge_dicts(preset_dict(base), data)
    return config_from_dict(merge_dicts(data, overrides or {}))


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    tmp.replace(path)


def parse_setting(item: str, where: str = "--set") -> tuple[str, Any]:
    """``"optim.iters=60"`` -> ``("optim.iters", 60)`` (the value read as YAML); ConfigError in one
    line naming ``where`` otherwise."""
    key, sep, value = str(item).partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{where} expects KEY=VALUE (e.g. optim.iters=60), got {item!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or "unreadable"
        raise ConfigError(f"{where} {item!r}: the value is not valid YAML ({problem}); e.g. 60, [1, 2] or 'text'") from None


def dotted_override(key: str, value: Any) -> dict:
    """``("optim.iters", 5)`` -> ``{"optim": {"iters": 5}}``."""
    out: dict = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out
