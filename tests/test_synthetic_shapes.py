"""Rendered 3D surfaces that carry the shape words the tiny CLIP learns."""

from __future__ import annotations

import torch

from text2mesh.guidance.synthetic import (
    SURFACES,
    SyntheticBatch,
    caption_matches,
    make_batch,
)
from text2mesh.guidance.synthetic_shapes import (
    BASE_KINDS,
    bank_batch,
    base_meshes,
    displacement,
    render_bank,
)


def test_bases_are_closed_surfaces_on_the_unit_sphere():
    for kind in BASE_KINDS:
        ((vertices, faces),) = base_meshes(1, torch.Generator().manual_seed(0), subdivisions=2, kinds=(kind,))
        assert vertices.mean(0).abs().max() < 1e-5 and abs(vertices.norm(dim=1).max().item() - 1) < 1e-5
        assert faces.max() < len(vertices) and len(faces) >= 80


def test_each_surface_word_has_its_own_geometry():
    ((vertices, _),) = base_meshes(1, torch.Generator().manual_seed(0), kinds=("ellipsoid",))
    d = {name: displacement(vertices, i, torch.Generator().manual_seed(1)) for i, name in enumerate(SURFACES)}
    assert torch.all(d["smooth"] == 0)
    for name in ("spiky", "bumpy"):  # isolated raised features: most of the surface untouched
        assert (d[name] > 0.01).float().mean() < 0.5 and d[name].min() >= 0
    assert d["spiky"].max() > d["bumpy"].max()
    assert (d["ridged"] > 0).float().mean() > 0.9 and (d["wavy"] < 0).float().mean() > 0.2  # everywhere, both ways


def test_renders_and_captions_name_their_surface():
    g = torch.Generator().manual_seed(2)
    bank = render_bank(base_meshes(5, g, subdivisions=3), g, views=2, passes=2, size=32)
    assert bank.images.shape == (20, 3, 32, 32) and bank.images.dtype == torch.uint8
    assert bank.images.float().std() > 10  # not flat
    batch = bank_batch(bank, torch.arange(20), bank.images.float() / 255, g)
    named = batch.cap_surface >= 0
    assert named.any()
    for caption, surface in zip(batch.captions, batch.cap_surface):
        if surface >= 0:
            assert SURFACES[surface] in caption or any(
                word in caption for word in ("spiked", "lumpy", "grooved", "undulating")), caption
    flat = make_batch(6, 32, g)
    both = SyntheticBatch.cat([flat, batch])
    matches = caption_matches(both)
    assert matches.diagonal().all()
    assert not matches[:6, 6:][:, named].any()  # a flat picture is never "spiky", "smooth", ...
