"""Rendered 3D surfaces that carry the shape words the tiny CLIP learns."""

from __future__ import annotations

import torch

from text2mesh.guidance.synthetic import (
    COLOUR_NAMES,
    MOTTLED,
    PATTERNS,
    SURFACES,
    SyntheticBatch,
    caption_matches,
    make_batch,
)
from text2mesh.guidance.synthetic_shapes import (
    BASE_KINDS,
    bank_batch,
    base_meshes,
    close_up,
    displacement,
    frame_content,
    pits,
    render_bank,
    speckles,
    surface_colours,
)
from text2mesh.mesh.statistics import stripe_score


def test_bases_are_closed_surfaces_on_the_unit_sphere():
    for kind in BASE_KINDS:
        ((vertices, faces),) = base_meshes(1, torch.Generator().manual_seed(0), subdivisions=2, kinds=(kind,))
        assert vertices.mean(0).abs().max() < 1e-5 and abs(vertices.norm(dim=1).max().item() - 1) < 1e-5
        assert faces.max() < len(vertices) and len(faces) >= 80


def test_creature_parts_form_one_connected_shape():
    for seed in range(5):
        ((vertices, faces),) = base_meshes(1, torch.Generator().manual_seed(seed), subdivisions=3, kinds=("creature",))
        assert len(vertices) % 162 == 0 and int(faces.max()) == len(vertices) - 1
        parts = vertices.view(-1, 162, 3)  # parts are icospheres of level 2 (162 vertices)
        assert len(parts) >= 4
        for i in range(1, len(parts)):  # every part reaches into the ones before it
            assert torch.cdist(parts[i], parts[:i].reshape(-1, 3)).min() < 0.02, (seed, i)


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


def test_framing_fills_the_picture_with_a_small_object_and_keeps_its_shape():
    images = torch.full((1, 3, 64, 64), 255, dtype=torch.uint8)
    images[0, :, 20:30, 30:35] = 40  # a small dark bar, twice as tall as wide
    framed = frame_content(images)[0]
    dark = (framed < 128).all(0)
    rows, cols = dark.any(1).nonzero().flatten(), dark.any(0).nonzero().flatten()
    assert rows[-1] - rows[0] + 1 >= 50  # it now fills the frame's height (margin aside)
    assert 0.4 < (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1) < 0.6  # same aspect
    assert (framed[:, 0, :] == 255).all()  # a white margin remains
    blank = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    assert torch.equal(frame_content(blank), blank)


def test_a_close_up_shows_the_object_magnified_as_the_geometry_crops_do():
    images = torch.full((6, 3, 224, 224), 255, dtype=torch.uint8)
    images[:, :, 100:124, 150:170] = 40  # a small dark patch off-centre
    out = close_up(images, 64, (0.1, 0.1), torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 64, 64)
    dark = (out < 128).all(1).flatten(1).float().mean(1)
    assert (dark > 0.05).all()  # every crop is centred on the object, not on the white around it
    assert (dark < 0.5).all()  # and is a crop of a tenth of the picture (the patch alone is 1%), not a framing
    render = render_bank(base_meshes(2, torch.Generator().manual_seed(5), subdivisions=3), torch.Generator(),
                         views=2, passes=1, size=32, speckled_fraction=0.0, close_ups=1.0)
    assert render.images.shape == (4, 3, 32, 32) and render.images.float().std() > 10


def test_speckled_meshes_are_named_by_no_surface_word():
    g = torch.Generator().manual_seed(4)
    bank = render_bank(base_meshes(12, g, subdivisions=3), g, views=1, passes=2, size=32, speckled_fraction=0.5)
    speckled = bank.surface < 0
    assert speckled.any() and not speckled.all()
    batch = bank_batch(bank, torch.arange(len(bank.surface)), bank.images.float() / 255, g)
    assert (batch.cap_surface[speckled] < 0).all()  # captions of colour and pattern only
    matches = caption_matches(batch)
    named = batch.cap_surface >= 0
    assert not matches[speckled][:, named].any()  # so every surface word is a negative for them
    ((vertices, _),) = base_meshes(1, g, subdivisions=3, kinds=("ellipsoid",))
    noise = speckles(vertices, g)
    assert 0.005 < noise.std() < 0.05 and noise.mean().abs() < 0.01


def test_pits_are_inward_spikes_named_by_no_surface_word():
    g = torch.Generator().manual_seed(6)
    ((vertices, _),) = base_meshes(1, g, subdivisions=4, kinds=("ellipsoid",))
    dents = pits(vertices, g)
    assert dents.max() == 0 and dents.min() < -0.02  # inward only, as deep as spikes are high
    assert 0.005 < (dents < 0).float().mean() < 0.5  # isolated: most of the surface untouched
    spiky = SURFACES.index("spiky")
    g = torch.Generator().manual_seed(7)
    bank = render_bank(base_meshes(16, g, subdivisions=3), g, views=1, passes=1, size=32, speckled_fraction=0.0,
                       pitted_fraction=0.5)
    assert (bank.surface < 0).any() and (bank.surface >= 0).any()
    batch = bank_batch(bank, torch.arange(len(bank.surface)), bank.images.float() / 255, g)
    assert not (batch.cap_surface[bank.surface < 0] == spiky).any()
    same = render_bank(base_meshes(16, torch.Generator().manual_seed(7), subdivisions=3), torch.Generator().manual_seed(7),
                       views=1, passes=1, size=32, speckled_fraction=0.0)
    assert (same.surface >= 0).all()  # without pits (the default) no mesh is left unnamed


def test_mottled_surfaces_are_painted_with_blotches_that_have_no_stripe_axis():
    ((vertices, _),) = base_meshes(1, torch.Generator().manual_seed(8), subdivisions=4, kinds=("ellipsoid",))
    blue, white = COLOUR_NAMES.index("blue"), COLOUR_NAMES.index("white")

    def painted(pattern: str, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return surface_colours(vertices, blue, white, PATTERNS.index(pattern), g)

    for seed in range(6):
        mottled, stripes = painted("mottled", seed), painted("stripes", seed)
        second = (mottled.mean(1) > 0.8).float().mean()  # white share: both colours show
        assert 0.1 < second < 0.9, (seed, second)
        assert stripe_score(mottled, vertices)[0] < 0.5 < stripe_score(stripes, vertices)[0], seed
    g = torch.Generator().manual_seed(9)
    bank = render_bank(base_meshes(12, g, subdivisions=3), g, views=1, passes=3, size=32, mottled=1.0)
    assert (bank.pattern == MOTTLED).any()
    quiet = render_bank(base_meshes(12, torch.Generator().manual_seed(9), subdivisions=3),
                        torch.Generator().manual_seed(9), views=1, passes=3, size=32)
    assert not (quiet.pattern == MOTTLED).any()  # drawn only when asked for, as the flat pictures are
