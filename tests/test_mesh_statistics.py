"""The measures behind the shape claims tell the surface words apart on known displacements."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import trimesh

from text2mesh.guidance.synthetic import SURFACES
from text2mesh.guidance.synthetic_shapes import displacement
from text2mesh.mesh.statistics import (
    bump_count,
    detail_skewness,
    direction_share,
    roughness,
    stripe_score,
    uniform_laplacian,
)

SPHERE = Path(__file__).resolve().parent.parent / "meshes" / "sphere.obj"


@pytest.fixture(scope="module")
def sphere() -> tuple[torch.Tensor, torch.Tensor]:
    mesh = trimesh.load(SPHERE, process=False)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)
    return vertices / vertices.norm(dim=1).max(), torch.tensor(mesh.faces, dtype=torch.int64)


@pytest.fixture(scope="module")
def surfaces(sphere) -> dict[str, torch.Tensor]:
    """Each surface word's training displacement scaled to a highest point of 0.04 (the training
    heights run from faint to 0.1), with faint per-vertex noise."""
    vertices, _ = sphere
    noise = 0.0003 * torch.randn(len(vertices), generator=torch.Generator().manual_seed(0))
    out = {}
    for i, name in enumerate(SURFACES):
        d = displacement(vertices, i, torch.Generator().manual_seed(3))
        out[name] = 0.04 * d / d.abs().max().clamp(min=1e-9) + noise
    return out


def test_laplacian_is_zero_on_a_constant_and_matches_the_neighbour_mean_by_hand():
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    values = torch.tensor([1.0, 2.0, 4.0, 8.0])
    assert torch.allclose(uniform_laplacian(torch.full((4,), 3.0), faces), torch.zeros(4))
    # vertex 1's neighbours: 0 and 2, each in one face (counted twice: once per shared edge direction)
    assert uniform_laplacian(values, faces)[1] == pytest.approx(2.0 - (1.0 + 4.0) / 2)


def test_spikes_are_rougher_than_smooth_bumps_and_waves(sphere, surfaces):
    _, faces = sphere
    rough = {name: roughness(d, faces) for name, d in surfaces.items()}
    assert rough["spiky"] > 2 * rough["smooth"] and rough["spiky"] > rough["bumpy"] > rough["smooth"]


def test_grooves_have_a_direction_and_bumps_do_not(sphere, surfaces):
    vertices, faces = sphere
    share = {name: direction_share(d, vertices, faces) for name, d in surfaces.items()}
    assert share["ridged"] > 0.6 and share["wavy"] > 0.6
    assert share["bumpy"] < 0.45 and share["spiky"] < 0.45 and share["smooth"] < 0.45


def test_bumps_are_counted_where_there_are_bumps(sphere, surfaces):
    vertices, faces = sphere
    count = {name: bump_count(d, vertices, faces) for name, d in surfaces.items()}
    assert count["bumpy"] >= 5 and count["spiky"] >= 10
    assert count["wavy"] <= 2 and count["ridged"] <= 2 and count["smooth"] < count["bumpy"]  # crests are not bumps


def test_studs_point_out_pits_point_in_and_symmetric_detail_points_nowhere(sphere, surfaces):
    _, faces = sphere
    skew = {name: detail_skewness(d, faces) for name, d in surfaces.items()}
    pitted = detail_skewness(-surfaces["spiky"], faces)
    assert skew["spiky"] > 1.0 and skew["bumpy"] > 1.0, skew
    assert pitted == pytest.approx(-skew["spiky"], rel=1e-4), "pits: the spikes' skewness, turned"
    assert abs(skew["wavy"]) < 0.5 and abs(skew["ridged"]) < 0.5 and abs(skew["smooth"]) < 0.5, skew


def test_stripes_score_high_with_their_bands_and_blotches_score_low(sphere):
    vertices, _ = sphere
    blue, white = torch.tensor([0.1, 0.2, 0.9]), torch.ones(3)
    paint = lambda mask: torch.where(mask[:, None], blue, white)
    stripes, bands = stripe_score(paint(torch.sin(10 * vertices @ torch.tensor([0.3, 0.9, 0.3])) > 0), vertices)
    blotches, _ = stripe_score(paint(torch.sin(7 * vertices[:, 0]) * torch.sin(6 * vertices[:, 1])
                                     * torch.sin(5 * vertices[:, 2] + 1) > 0), vertices)
    gradient, gradient_bands = stripe_score(vertices[:, 2:3].expand(-1, 3), vertices)
    assert stripes > 0.7 and bands >= 5
    assert blotches < 0.3
    assert gradient > 0.9 and gradient_bands <= 2  # one axis explains it, but it is not striped
    assert stripe_score(blue.expand(len(vertices), 3), vertices) == (0.0, 0), "plain blue is not striped"
