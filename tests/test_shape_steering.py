"""The geometry path steers (issue 17): shape words on shipped meshes with displacement ON.

Once the shipped tiny CLIP sees surface shape, "a spiky object" must make a rougher displacement
than "a smooth object" on the shipped sphere and vase, with the `tiny` preset's settings and
displacement on (the draft run), and the mesh must keep its size. Measured on the displacement
(mean |Laplacian|, :func:`text2mesh.mesh.statistics.roughness`) and on pixels: the grey renders'
shading varies more from pixel to pixel where there are spikes.

The colour-and-pattern ViT alone did not steer shape (roughness spiky/smooth 0.51 on the
sphere, 0.25 on the vase; grey-render detail 0.59 and 0.37); the shipped ensemble with the
shape ResNet does (figures in scripts/train_tiny_clip.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from stylize_helpers import object_neighbour_difference

from text2mesh.api import stylize
from text2mesh.config import load_config
from text2mesh.mesh.statistics import detail_skewness, roughness
from text2mesh.render import Renderer
from text2mesh.views import cameras_from_angles

MESHES = Path(__file__).resolve().parent.parent / "meshes"

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]



@pytest.fixture(scope="module")
def runs(tiny):
    """(mesh name, prompt) -> StyleResult, the tiny preset as shipped (displacement on)."""
    cfg = load_config("tiny", overrides={"optim": {"device": "cpu", "seed": 0}})
    assert cfg.field.displacement
    return {(name, prompt): stylize(MESHES / f"{name}.obj", prompt, cfg, clip=tiny)
            for name in ("sphere", "vase") for prompt in ("a spiky object", "a smooth object")}


def _grey_shading_detail(result) -> float:
    """Neighbouring object pixels' difference in lit grey renders from four sides."""
    azimuth = torch.arange(4, dtype=torch.float32) * (math.pi / 2)
    cameras = cameras_from_angles(azimuth, torch.full((4,), 0.3), image_size=(160, 160))
    grey = torch.full_like(result.colors, 0.5)
    out = Renderer().render(result.vertices, result.faces, cameras, grey, lighting="sh", background=None)
    return object_neighbour_difference(out.images, out.alpha)


@pytest.mark.parametrize("name", ["sphere", "vase"])
def test_spiky_prompt_gives_a_rougher_displacement_than_smooth(runs, name):
    spiky, smooth = runs[(name, "a spiky object")], runs[(name, "a smooth object")]
    faces = spiky.prepared.mesh.faces
    rough, calm = roughness(spiky.displacements, faces), roughness(smooth.displacements, faces)
    assert rough >= 2 * calm, f"{name}: roughness spiky {rough:.3g}, smooth {calm:.3g}"
    assert spiky.displacements.abs().max() > 0.5 * load_config("tiny").field.normratio  # it moved


@pytest.mark.parametrize("name", [
    pytest.param("sphere", marks=pytest.mark.xfail(strict=True, reason=(
        "issue 17: which way the spikes point is still a coin toss on the sphere: pits at one thread (detail "
        "skewness -2.8 in this run, seed 0; -2.2 and -2.1 at seeds 1 and 2), studs at two threads for seeds 0 "
        "and 1 (+2.5, as scripts/bench_steering.py measures it, and +1.9), pits for seed 2 (-3.5)"))),
    "vase",
])
def test_spiky_prompt_raises_studs_not_pits(runs, name):
    spiky = runs[(name, "a spiky object")]
    skew = detail_skewness(spiky.displacements, spiky.prepared.mesh.faces)
    assert skew > 0.5, f"{name}: detail skewness {skew:.3f} (< 0: pits)"


@pytest.mark.parametrize("name", ["sphere", "vase"])
def test_spiky_grey_renders_show_more_shading_detail_than_smooth(runs, name):
    spiky, smooth = runs[(name, "a spiky object")], runs[(name, "a smooth object")]
    rough, calm = _grey_shading_detail(spiky), _grey_shading_detail(smooth)
    assert rough >= 1.5 * calm, f"{name}: grey neighbour differences spiky {rough:.4f}, smooth {calm:.4f}"


@pytest.mark.parametrize("name", ["sphere", "vase"])
def test_shape_words_keep_the_meshs_size(runs, name):
    """In the input's own frame (the re-normalization's promise), displacement on."""
    source = trimesh.load(MESHES / f"{name}.obj", process=False)
    diagonal = np.linalg.norm(np.ptp(source.vertices, axis=0))
    for prompt in ("a spiky object", "a smooth object"):
        stylized = runs[(name, prompt)].vertices_input_frame().numpy()
        assert np.linalg.norm(np.ptp(stylized, axis=0)) == pytest.approx(diagonal, rel=0.03), prompt
