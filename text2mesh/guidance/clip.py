"""CLIP models for guidance: loading (offline-safe), preprocessing and encoding.

Every model is built by open_clip from an architecture name and loaded from a checkpoint file,
whether the file is a pretrained tag's download in open_clip's cache, a file the user names, or
one of the project's own tiny models shipped in ``text2mesh/assets``. The offline guide
``"text2mesh-tiny"`` is an ensemble of two of them (:class:`ClipEnsemble`): a ViT that knows
colours and patterns (``text2mesh-tiny-colour``) and a ResNet that also sees surface shape
(``text2mesh-tiny-shape``); its similarity is the mean of theirs.

Network access happens only when a pretrained tag's weights are not cached, ``HF_HUB_OFFLINE`` is
not set and a quick connection check succeeds; otherwise :func:`load_clip` raises
:class:`~text2mesh.errors.ClipError` at once with a one-line message saying the two ways out.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ClipError, first_line

__all__ = [
    "ENSEMBLES",
    "SHIPPED_MODELS",
    "TINY_COLOUR",
    "TINY_JUDGE",
    "TINY_MODEL",
    "TINY_SHAPE",
    "ClipEnsemble",
    "ClipModel",
    "import_open_clip",
    "load_clip",
    "load_ensemble",
    "preprocess_images",
    "random_clip",
    "shipped_checkpoints",
    "tiny_checkpoint_path",
]

logger = logging.getLogger(__name__)

TINY_MODEL = "text2mesh-tiny"  # the offline guide: the ensemble of the next two
TINY_COLOUR = "text2mesh-tiny-colour"  # a ViT on flat pictures of colours and patterns
TINY_SHAPE = "text2mesh-tiny-shape"  # a ResNet on those and on rendered 3D surfaces
# the independent judge: trained like the shape model on another split, seed and width; for scoring only
TINY_JUDGE = "text2mesh-tiny-judge"
SHIPPED_MODELS = (TINY_COLOUR, TINY_SHAPE, TINY_JUDGE)  # one config and checkpoint each in ASSETS_DIR
# Ensembles of shipped models, equally weighted. Alone, the colour ViT leaves shape words without
# effect (a spiky prompt made the sphere no rougher than a smooth one), and the shape ResNet pulls
# colours too weakly in 2D and reaches flat colour for "blue and white stripes"; together they
# pass both halves of the suite's steering tests (scripts/train_tiny_clip.py has the figures).
ENSEMBLES = {TINY_MODEL: {TINY_COLOUR: 0.5, TINY_SHAPE: 0.5}}  # member: weight
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
HF_HOST = "huggingface.co"
REACH_TIMEOUT_S = 3.0


def tiny_checkpoint_path(name: str) -> Path:
    """The shipped checkpoint of a tiny model (``text2mesh/assets/<name>.pt``)."""
    return ASSETS_DIR / f"{name}.pt"


def shipped_checkpoints(name: str) -> list[Path]:
    """The checkpoint files a shipped model or ensemble loads."""
    return [tiny_checkpoint_path(member) for member in ENSEMBLES.get(name, (name,))]


def import_open_clip():
    """The open_clip module, with the package's model configs registered (per process, idempotent)."""
    import open_clip

    if TINY_COLOUR not in open_clip.list_models():
        open_clip.add_model_config(ASSETS_DIR)
    return open_clip


def preprocess_images(
    images: torch.Tensor,
    size: tuple[int, int],
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    interpolation: str = "bicubic",
) -> torch.Tensor:
    """Differentiable CLIP preprocessing of a batch.

    images: [B,3,H,W] float in [0,1], any H, W. Center-crops to the target aspect ratio (like
    open_clip's "shortest side" resize followed by a center crop), resizes to ``size`` with
    antialiasing, then normalizes with ``mean``/``std``.
    Returns [B,3,size[0],size[1]] in the images' dtype and device.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [B,3,H,W], got {tuple(images.shape)}")
    out_h, out_w = size
    h, w = images.shape[-2:]
    crop_h, crop_w = h, w
    if h * out_w > w * out_h:
        crop_h = max(1, round(w * out_h / out_w))
    elif h * out_w < w * out_h:
        crop_w = max(1, round(h * out_w / out_h))
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    images = images[:, :, top : top + crop_h, left : left + crop_w]
    if (crop_h, crop_w) != (out_h, out_w):
        mode = interpolation if interpolation in ("bilinear", "bicubic") else "bilinear"
        images = F.interpolate(images, size=(out_h, out_w), mode=mode, align_corners=False, antialias=True)
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean_t) / std_t


class ClipModel:
    """A frozen open_clip model with differentiable image preprocessing.

    Attributes: ``name`` (architecture), ``source`` (where the weights came from), ``model`` (the
    open_clip module, eval mode, ``requires_grad`` off), ``image_size`` (H, W) the model's input
    size, ``mean``/``std`` its normalization, ``interpolation``, ``context_length``, ``embed_dim``,
    ``device``.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, name: str, source: str) -> None:
        open_clip = import_open_clip()
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
        pp = open_clip.get_model_preprocess_cfg(model)
        size = pp.get("size", model.visual.image_size)
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.source = source
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.mean: tuple[float, float, float] = tuple(float(v) for v in pp["mean"])
        self.std: tuple[float, float, float] = tuple(float(v) for v in pp["std"])
        self.interpolation: str = pp.get("interpolation", "bicubic")
        self.context_length: int = int(getattr(tokenizer, "context_length", 77))
        self.embed_dim: int = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else -1

    def __repr__(self) -> str:
        return f"ClipModel({self.name!r}, source={self.source!r}, image_size={self.image_size})"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> ClipModel:
        """Move the weights to ``device`` (in place); returns self."""
        self.model.to(device)
        return self

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids [N, context_length] int64 on ``self.device``; longer texts are truncated."""
        return self.tokenizer(list(texts)).to(self.device)

    def n_tokens(self, text: str) -> int:
        """Number of tokens ``text`` needs including start/end tokens (> context_length: truncated).

        Exact for open_clip's standard BPE tokenizer; for other tokenizers, the count after
        truncation (so never more than ``context_length``)."""
        encode = getattr(self.tokenizer, "encode", None)
        if callable(encode):
            return len(encode(text)) + 2
        return int((self.tokenizer([text]) != 0).sum())

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in [0,1] -> [B,3,h,w] normalized at the model's input size (differentiable)."""
        return preprocess_images(images, self.image_size, self.mean, self.std, self.interpolation)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings [N, D] float32 (no gradient: the weights are frozen)."""
        with torch.no_grad():
            features = self.model.encode_text(self.tokenize(texts))
        return F.normalize(features.float(), dim=-1)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm image embeddings [B, D] float32, differentiable wrt ``images``.

        images: [B,3,H,W] float in [0,1], any size (resized to ``image_size``), any device
        (moved to the model's device).
        """
        pixels = self.preprocess(images.to(self.device, torch.float32))
        return F.normalize(self.model.encode_image(pixels).float(), dim=-1)


class ClipEnsemble:
    """Several frozen CLIPs used as one: the similarity of an image and a text is the weighted mean
    of the members' cosine similarities (each member embeds in its own space, so the embeddings
    are the members' unit vectors, scaled by the square roots of the weights and concatenated).

    Has ClipModel's interface: ``name``, ``source``, ``image_size`` (the largest member's: each
    member resizes to its own), ``context_length`` (the shortest), ``embed_dim``, ``device``,
    ``to``, ``n_tokens``, ``encode_text``, ``encode_images``; ``members`` and ``weights``.
    """

    def __init__(self, members: list[ClipModel], name: str, weights: list[float] | None = None) -> None:
        weights = weights if weights is not None else [1.0 / len(members)] * len(members)
        if len(weights) != len(members) or abs(sum(weights) - 1.0) > 1e-6 or min(weights) < 0:
            raise ValueError(f"ensemble weights must be {len(members)} non-negative numbers summing to 1: {weights}")
        self.members, self.weights, self.name = list(members), list(weights), name
        self.source = " + ".join(member.source for member in members)
        self.image_size: tuple[int, int] = max((m.image_size for m in members), key=lambda hw: hw[0] * hw[1])
        self.context_length: int = min(m.context_length for m in members)
        self.embed_dim: int = sum(m.embed_dim for m in members)

    def __repr__(self) -> str:
        return f"ClipEnsemble({self.name!r}, members={[m.name for m in self.members]})"

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def to(self, device: str | torch.device) -> ClipEnsemble:
        for member in self.members:
            member.to(device)
        return self

    def n_tokens(self, text: str) -> int:
        return max(member.n_tokens(text) for member in self.members)

    def _joined(self, embeddings: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([w**0.5 * e for w, e in zip(self.weights, embeddings)], dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings [N, sum of members' D]."""
        return self._joined([member.encode_text(texts) for member in self.members])

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm image embeddings [B, sum of members' D], differentiable wrt ``images`` [B,3,H,W]."""
        return self._joined([member.encode_images(images) for member in self.members])


@dataclass(frozen=True)
class _Weights:
    path: str | None  # a local file, or None when it must be downloaded
    preprocess: dict  # the tag's mean/std/interpolation/resize_mode overrides
    quick_gelu: bool = False  # the tag was trained with QuickGELU (e.g. OpenAI's weights)


def env_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in ("1", "true", "yes", "on")


def reachable(host: str, port: int = 443, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host:port opens within ``timeout`` seconds (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hf_cached_file(repo_id: str, filename: str, cache_dir: str | None) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    return found if isinstance(found, str) and os.path.isfile(found) else None


def _cached_weights(pretrained_cfg: dict, cache_dir: str | None) -> str | None:
    """The local file holding a pretrained tag's weights, if it was downloaded before."""
    if pretrained_cfg.get("file"):
        return pretrained_cfg["file"] if os.path.isfile(pretrained_cfg["file"]) else None
    hub = pretrained_cfg.get("hf_hub", "")
    if hub:
        repo_id, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        candidates = [filename]
        if filename.endswith((".bin", ".pth")):
            candidates.insert(0, filename[:-4] + ".safetensors")
        if filename == "open_clip_pytorch_model.bin":
            candidates.insert(0, "open_clip_model.safetensors")
        for candidate in candidates:
            found = hf_cached_file(repo_id, candidate, cache_dir)
            if found:
                return found
    url = pretrained_cfg.get("url", "")
    if url:
        url_cache = cache_dir or os.path.expanduser("~/.cache/clip")
        target = os.path.join(url_cache, os.path.basename(urllib.parse.urlparse(url).path))
        if os.path.isfile(target):
            return target
    return None


def _download_host(pretrained_cfg: dict) -> str:
    if pretrained_cfg.get("hf_hub"):
        return HF_HOST
    return urllib.parse.urlparse(pretrained_cfg.get("url", "")).hostname or HF_HOST


def _offline_message(name: str, pretrained: str, reason: str) -> str:
    return (
        f"CLIP weights for {name} ({pretrained}) are not cached and {reason}: run once with network "
        f"access to fill the cache, or pass --clip-checkpoint FILE (or use --clip-model {TINY_MODEL})"
    )


def _resolve_weights(name: str, pretrained: str | None, checkpoint: str | os.PathLike | None,
                     cache_dir: str | None) -> _Weights:
    open_clip = import_open_clip()
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ClipError(f"CLIP checkpoint not found: {path}")
        return _Weights(str(path), {})
    if name in SHIPPED_MODELS:
        path = tiny_checkpoint_path(name)
        if not path.is_file():
            raise ClipError(f"the {name} checkpoint is missing ({path}); run scripts/train_tiny_clip.py --model {name}")
        return _Weights(str(path), {})
    if not pretrained:
        raise ClipError(f"no weights for CLIP {name}: give a pretrained tag or --clip-checkpoint FILE")
    if os.path.isfile(pretrained):
        return _Weights(pretrained, {})
    pretrained_cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not pretrained_cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise ClipError(f"unknown pretrained tag {pretrained!r} for CLIP {name}; known tags: {tags}")
    preprocess = {k: pretrained_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in pretrained_cfg}
    quick_gelu = bool(pretrained_cfg.get("quick_gelu", False))
    cached = _cached_weights(pretrained_cfg, cache_dir)
    if cached:
        return _Weights(cached, preprocess, quick_gelu)
    if env_offline():
        raise ClipError(_offline_message(name, pretrained, "HF_HUB_OFFLINE is set"))
    host = _download_host(pretrained_cfg)
    if not reachable(host):
        raise ClipError(_offline_message(name, pretrained, f"{host} cannot be reached"))
    return _Weights(None, preprocess, quick_gelu)


def load_clip(
    name: str = "ViT-B-32",
    pretrained: str | None = "openai",
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
) -> ClipModel | ClipEnsemble:
    """Load a frozen CLIP model.

    name: an open_clip architecture (``open_clip.list_models()``), one of the project's tiny
    models trained on colours, patterns and surface shapes (SHIPPED_MODELS: their shipped
    checkpoints are used unless ``checkpoint`` is given; ``pretrained`` is ignored for them), or
    ``"text2mesh-tiny"``, the ensemble of two of them (:data:`ENSEMBLES`; no ``checkpoint``).
    pretrained: an open_clip tag (e.g. ``"openai"``) or a local file; used when ``checkpoint`` is None.
    checkpoint: a local state-dict file (.pt/.bin/.safetensors) for the ``name`` architecture.
    cache_dir: open_clip's download cache (None: the Hugging Face / ``~/.cache/clip`` defaults).
    Raises ClipError (one line) for unknown names/tags, bad files, or weights that are neither
    cached nor downloadable (within seconds, without retries, when offline).
    """
    if name in ENSEMBLES:
        if checkpoint is not None:
            raise ClipError(f"{name} is an ensemble of {' and '.join(ENSEMBLES[name])}: give a checkpoint to one of them")
        return load_ensemble(name, device=device)
    open_clip = import_open_clip()
    if name not in open_clip.list_models():
        raise ClipError(f"unknown CLIP model {name!r}; see open_clip.list_models() or use {TINY_MODEL}")
    weights = _resolve_weights(name, pretrained, checkpoint, cache_dir)
    source = weights.path or f"{name}/{pretrained}"
    try:
        model = open_clip.create_model(
            name,
            pretrained=weights.path if weights.path else pretrained,
            device=device,
            cache_dir=cache_dir,
            force_preprocess_cfg=weights.preprocess or None,
            force_quick_gelu=weights.quick_gelu,
            require_pretrained=True,
        )
    except Exception as exc:  # noqa: BLE001 -- torch.load / load_state_dict fail with many types for a bad file
        raise ClipError(f"cannot load CLIP {name} weights from {source}: {first_line(exc)}") from None
    logger.info("loaded CLIP %s from %s", name, source)
    return ClipModel(model, _tokenizer(name), name, source)


def _tokenizer(name: str):
    """open_clip's tokenizer for the architecture ``name``, one per text tower setting: building
    the BPE tables takes ~0.2 s on 2 cores, and the offline ensemble's members share one."""
    text_cfg = import_open_clip().get_model_config(name).get("text_cfg", {})
    return _cached_tokenizer(_TokenizerKey(json.dumps(text_cfg, sort_keys=True), name))


@dataclass(frozen=True)
class _TokenizerKey:
    """A text tower's settings (JSON), and an architecture that has them (not part of the key)."""

    text_cfg: str
    name: str = field(compare=False)


@functools.lru_cache(maxsize=8)
def _cached_tokenizer(key: _TokenizerKey):
    return import_open_clip().get_tokenizer(key.name)


def load_ensemble(name: str, substitutes: dict[str, ClipModel] | None = None,
                  device: str | torch.device = "cpu") -> ClipEnsemble:
    """A shipped ensemble (:data:`ENSEMBLES`) with its weights, each member loaded from its shipped
    checkpoint unless ``substitutes`` gives a model for it (a candidate being trained or measured)."""
    substitutes = substitutes or {}
    members = ENSEMBLES[name]
    loaded = [substitutes.get(member) or load_clip(member, device=device) for member in members]
    return ClipEnsemble(loaded, name, list(members.values()))


def random_clip(name: str = TINY_COLOUR, seed: int = 0, device: str | torch.device = "cpu") -> ClipModel:
    """A CLIP with random (seeded) weights of any open_clip architecture, for tests/benchmarks."""
    open_clip = import_open_clip()
    if name not in open_clip.list_models():
        raise ClipError(f"unknown CLIP model {name!r}; see open_clip.list_models()")
    with torch.random.fork_rng(devices=[]), _quiet_open_clip():
        torch.manual_seed(seed)
        model = open_clip.create_model(name, pretrained=None, device=device)
    return ClipModel(model, _tokenizer(name), name, f"random(seed={seed})")


@contextlib.contextmanager
def _quiet_open_clip():
    """Silence open_clip's 'initialized randomly' warning, which is intended here."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)
