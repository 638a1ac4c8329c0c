"""The CLIP objective: weighted text/image targets scored against batches of augmented renders.

A run has a list of :class:`Target` s — the main prompt (weight 1), extra ``"text:weight"``
prompts, image prompts ``"file[:weight]"`` and negatives (weight -1) — all one mechanism.
Their unit embeddings are computed once. Each iteration hands the :class:`Objective` a few
:class:`Term` s (full views, local crops, grey geometry crops), every term a batch of augmented
images with a weight; all images of all terms go through CLIP in one batched call, and the
result is one scalar: the weighted sum over terms of ``-sum_t w_t * cos(image embedding, target t)``
summed over the term's augmentations (Text2Mesh's loss: one ``-cos`` per augmentation) or
averaged over them (the 2D mode's cutouts).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..targets import Target, read_image

log = logging.getLogger(__name__)


def load_image(path: str | Path) -> Tensor:
    """Read an image file as [1, 3, H, W] float32 in [0, 1] (alpha composited on white)."""
    return torch.from_numpy(read_image(path)).permute(2, 0, 1).unsqueeze(0).contiguous()


def _warn_if_truncated(clip, text: str) -> None:
    if clip.n_tokens(text) > clip.context_length:
        log.warning(
            "prompt is longer than CLIP's %d-token context and was truncated: %r",
            clip.context_length,
            text[:60] + ("..." if len(text) > 60 else ""),
        )


@dataclass(frozen=True)
class Term:
    """One loss term's images for one iteration.

    Attributes:
        name: for logging ("full", "local", "geometry", ...).
        images: [A * B, 3, h, w] float in [0, 1]; index ``a * B + b`` is augmentation a of view b.
        n_views: B (embeddings are averaged over these when averaging == "views").
        weight: the term's weight in the total loss.
        reduce: how the A augmentations' losses combine: "sum" (Text2Mesh: each augmentation
            is one ``-cos`` in the loss, so a term with 4 crops weighs 4 full views) or "mean".
    """

    name: str
    images: Tensor
    n_views: int
    weight: float = 1.0
    reduce: Literal["sum", "mean"] = "sum"


class Objective:
    """Weighted CLIP targets; call it with the iteration's terms to get one loss.

    Args:
        clip: a ClipModel (``encode_text``, ``encode_images``, ``tokenize``, ``context_length``).
        targets: from :func:`build_targets`.
        averaging: "views" averages image embeddings over views before the cosine (the
            reference); "none" scores every image on its own.
        chunk_size: images per CLIP call (None: all images of an iteration in one call).
    """

    def __init__(
        self,
        clip,
        targets: Sequence[Target],
        *,
        averaging: Literal["views", "none"] = "views",
        chunk_size: int | None = None,
    ) -> None:
        if not targets:
            raise ConfigError("no targets: give a PROMPT")
        self.clip = clip
        self.targets = list(targets)
        self.averaging = averaging
        self.chunk_size = chunk_size
        self.target_embeddings = self._embed_targets()
        self.weights = torch.tensor([t.weight for t in self.targets], dtype=torch.float32).to(
            self.target_embeddings.device
        )

    def _embed_targets(self) -> Tensor:
        """[T, D] unit embeddings, computed once without gradients."""
        rows = []
        with torch.no_grad():
            for target in self.targets:
                if target.kind == "text":
                    _warn_if_truncated(self.clip, target.value)
                    rows.append(self.clip.encode_text([target.value])[0])
                else:
                    image = load_image(target.value).to(self.clip.device)
                    rows.append(self.clip.encode_images(image)[0])
        return F.normalize(torch.stack(rows).float(), dim=-1)

    def encode(self, images: Tensor) -> Tensor:
        """[N, 3, h, w] -> [N, D] image embeddings (one CLIP call, or chunks of chunk_size)."""
        if self.chunk_size is None or images.shape[0] <= self.chunk_size:
            return self.clip.encode_images(images)
        return torch.cat([self.clip.encode_images(c) for c in images.split(self.chunk_size)])

    def similarity(self, embeddings: Tensor, n_views: int) -> Tensor:
        """Cosine similarities to every target, per augmentation.

        Args:
            embeddings: [A * B, D] image embeddings of one term.
            n_views: B.
        Returns:
            [A, T] cosine per augmentation and target: of the view-averaged embedding when
            averaging == "views", else the mean over the B views of each view's cosine.
        """
        d = embeddings.shape[-1]
        e = embeddings.float().reshape(-1, n_views, d)
        if self.averaging == "views":
            return F.normalize(e.mean(dim=1), dim=-1) @ self.target_embeddings.T
        return (F.normalize(e, dim=-1) @ self.target_embeddings.T).mean(dim=1)

    def term_loss(self, embeddings: Tensor, n_views: int, reduce: Literal["sum", "mean"] = "sum") -> Tensor:
        """Scalar ``-sum_t w_t * cos_t`` of one term, summed or averaged over its augmentations."""
        per_augmentation = -(self.similarity(embeddings, n_views) * self.weights).sum(dim=1)
        return per_augmentation.sum() if reduce == "sum" else per_augmentation.mean()

    def __call__(self, terms: Sequence[Term]) -> tuple[Tensor, dict[str, float]]:
        """Total loss of an iteration.

        Returns:
            loss: scalar tensor (differentiable wrt the terms' images), sum of weighted terms.
            parts: {term name: its unweighted loss value} for logging.
        """
        terms = [t for t in terms if t.images.shape[0] > 0 and t.weight != 0]
        if not terms:
            raise ConfigError("every loss term is off; enable at least one of full/local/geometry")
        embeddings = self.encode(torch.cat([t.images for t in terms]))
        sizes = [t.images.shape[0] for t in terms]
        total = embeddings.new_zeros(())
        parts: dict[str, float] = {}
        for term, emb in zip(terms, embeddings.split(sizes)):
            value = self.term_loss(emb, term.n_views, term.reduce)
            parts[term.name] = float(value.detach())
            total = total + term.weight * value
        return total, parts
