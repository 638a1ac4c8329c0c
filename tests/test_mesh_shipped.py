"""The meshes shipped in meshes/: closed, small, y-up, facing +z, and reproducible from code."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from text2mesh.config import MeshConfig
from text2mesh.mesh import load_trimesh, prepare_mesh

ROOT = Path(__file__).resolve().parent.parent
MESHES = ROOT / "meshes"
NAMES = ["human", "sphere", "vase", "dog"]


def make_meshes_module():
    spec = importlib.util.spec_from_file_location("make_meshes", ROOT / "scripts" / "make_meshes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_meshes", module)
    spec.loader.exec_module(sys.modules["make_meshes"])
    return sys.modules["make_meshes"]


@pytest.fixture(scope="module")
def human() -> trimesh.Trimesh:
    return load_trimesh(MESHES / "human.obj")


@pytest.mark.parametrize("name", NAMES)
def test_shipped_meshes_are_closed_small_and_outward_facing(name):
    path = MESHES / f"{name}.obj"
    assert path.stat().st_size < 5_000_000
    mesh = load_trimesh(path)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward-facing triangles
    assert len(mesh.split(only_watertight=False)) == 1


@pytest.mark.parametrize("name", ["human", "vase", "dog"])
def test_standing_meshes_stand_on_y_zero(name):
    bounds = load_trimesh(MESHES / f"{name}.obj").bounds
    assert abs(bounds[0, 1]) < 0.01
    height = bounds[1, 1] - bounds[0, 1]
    assert height > 0.7 * np.max(bounds[1] - bounds[0])


def test_human_is_a_standing_humanoid_facing_plus_z(human):
    assert 20_000 <= len(human.faces) <= 60_000
    v = human.vertices
    height = v[:, 1].max()
    assert height > 2.5 * np.ptp(v[:, 0]) > 0  # tall and upright
    head = v[v[:, 1] > 0.88 * height]
    nose = head[head[:, 2].argmax()]
    assert abs(nose[0]) < 0.02 and nose[2] > -head[:, 2].min() + 0.01  # the nose sticks out to +z
    toes = v[v[:, 1] < 0.05 * height]
    assert toes[:, 2].max() > 2 * -toes[:, 2].min()  # feet point forward
    hands = v[np.abs(v[:, 1] - 0.45 * height) < 0.02]
    assert (hands[:, 0] > 0.25).any() and (hands[:, 0] < -0.25).any()  # arms hang at both sides


def test_human_prepares_within_the_default_budget(human):
    prepared = prepare_mesh(MESHES / "human.obj", MeshConfig())
    cfg = MeshConfig()
    assert prepared.mesh.n_faces <= cfg.max_faces
    assert prepared.mesh.vertices.norm(dim=1).max() <= 1 + 1e-5
    back = prepared.transform.to_input(prepared.mesh.vertices.double()).numpy()
    assert np.allclose(back.min(0), human.bounds[0], atol=1e-4)


@pytest.mark.parametrize("name", ["sphere", "vase"])
def test_simple_meshes_are_reproduced_exactly_by_the_script(tmp_path, name):
    module = make_meshes_module()
    module.main(["--out", str(tmp_path), "--only", name])
    assert (tmp_path / f"{name}.obj").read_bytes() == (MESHES / f"{name}.obj").read_bytes()
