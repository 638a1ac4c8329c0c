"""CLIP guidance: frozen CLIP models and the objective built on them."""

from .clip import (
    TINY_MODEL,
    ClipEnsemble,
    ClipModel,
    load_clip,
    preprocess_images,
    random_clip,
)

__all__ = ["TINY_MODEL", "ClipEnsemble", "ClipModel", "load_clip", "preprocess_images", "random_clip"]
