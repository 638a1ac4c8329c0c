"""A small random-weight ViT CLIP for tests of the machine (objectives, generators, pipelines).

Its architecture is fixed here, apart from the shipped models', so that retraining or
re-architecting ``text2mesh-tiny`` does not change what these tests measure: they check that
gradients flow and move pictures and meshes, not what a trained model knows.
"""

from __future__ import annotations

from pathlib import Path

from text2mesh.guidance.clip import (
    TINY_MODEL,
    ClipModel,
    import_open_clip,
    random_clip,
    shipped_checkpoints,
)

CONFIG = Path(__file__).resolve().parent / "models" / "random-vit.json"


def random_vit(seed: int = 0) -> ClipModel:
    open_clip = import_open_clip()
    if CONFIG.stem not in open_clip.list_models():
        open_clip.add_model_config(CONFIG)
    return random_clip(CONFIG.stem, seed=seed)


def tiny_clip_is_shipped() -> bool:
    """Whether every checkpoint of the offline guide (text2mesh-tiny's members) is in text2mesh/assets."""
    return all(path.is_file() for path in shipped_checkpoints(TINY_MODEL))
