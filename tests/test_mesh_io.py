"""Loading: every supported format reads, scenes flatten, and every bad input is one MeshError line."""

import numpy as np
import pytest
import trimesh

from text2mesh.errors import MeshError
from text2mesh.mesh import SUPPORTED_SUFFIXES, load_trimesh

TETRA_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"


@pytest.mark.parametrize("suffix", sorted(SUPPORTED_SUFFIXES))
def test_every_supported_format_round_trips(tmp_path, suffix):
    box = trimesh.creation.box(extents=[1.0, 2.0, 3.0])
    path = tmp_path / f"box{suffix}"
    box.export(path)
    loaded = load_trimesh(path)
    assert len(loaded.faces) == 12
    assert np.isclose(loaded.area, box.area)
    assert np.allclose(loaded.bounds, box.bounds)


def test_suffix_is_case_insensitive(tmp_path):
    path = tmp_path / "TETRA.OBJ"
    path.write_text(TETRA_OBJ)
    assert len(load_trimesh(path).faces) == 4


def test_scene_parts_are_flattened_with_their_transforms(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(), transform=trimesh.transformations.translation_matrix([5, 0, 0]))
    scene.add_geometry(trimesh.creation.icosphere(1), transform=trimesh.transformations.translation_matrix([-5, 0, 0]))
    path = tmp_path / "scene.glb"
    scene.export(path)
    loaded = load_trimesh(path)
    assert len(loaded.faces) == 12 + 80
    assert np.allclose(loaded.bounds, [[-6, -1, -1], [5.5, 1, 1]], atol=1e-5)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_vertex_colours_are_read(tmp_path, suffix):
    sphere = trimesh.creation.icosphere(1)
    colors = np.zeros((len(sphere.vertices), 4), dtype=np.uint8)
    colors[:, 0], colors[:, 3] = 200, 255
    sphere.visual.vertex_colors = colors
    path = tmp_path / f"red{suffix}"
    sphere.export(path)
    loaded = load_trimesh(path)
    assert loaded.visual.kind == "vertex"
    assert (np.asarray(loaded.visual.vertex_colors)[:, :3] == [200, 0, 0]).all()


def test_mesh_without_colours_has_none(tmp_path):
    path = tmp_path / "tetra.obj"
    path.write_text(TETRA_OBJ)
    assert load_trimesh(path).visual.kind is None


def write_bad_inputs(tmp_path):
    (tmp_path / "folder.obj").mkdir()
    (tmp_path / "empty.obj").write_text("")
    (tmp_path / "model.fbx").write_text("not supported")
    (tmp_path / "model").write_text(TETRA_OBJ)
    (tmp_path / "garbage.ply").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "garbage.glb").write_bytes(b"glTF" + bytes(200))
    (tmp_path / "garbage.gltf").write_text("{not json")
    (tmp_path / "garbage.off").write_text("OFF\n3 1 0\n0 0\n")
    (tmp_path / "text.obj").write_text("hello, I am a text file\n")
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    trimesh.PointCloud(np.random.default_rng(0).random((20, 3))).export(tmp_path / "cloud.ply")


BAD_INPUTS = {
    "missing.obj": "not found",
    "folder.obj": "directory",
    "empty.obj": "empty",
    "model.fbx": "unsupported mesh format",
    "model": "unsupported mesh format",
    "garbage.ply": "cannot read",
    "garbage.glb": "cannot read",
    "garbage.gltf": "cannot read",
    "garbage.off": "cannot read",
    "text.obj": "no triangles",
    "points.obj": "point cloud",
    "cloud.ply": "point cloud",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_inputs_raise_one_line_mesh_errors(tmp_path, name):
    write_bad_inputs(tmp_path)
    with pytest.raises(MeshError) as info:
        load_trimesh(tmp_path / name)
    message = str(info.value)
    assert BAD_INPUTS[name] in message
    assert "\n" not in message and len(message) < 300


def test_texture_colours_are_sampled_into_vertex_colours(tmp_path):
    from PIL import Image

    box = trimesh.creation.box()
    uv = np.random.default_rng(0).random((len(box.vertices), 2))
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.new("RGB", (8, 8), (0, 255, 0)))
    path = tmp_path / "textured.obj"
    box.export(path)
    loaded = load_trimesh(path)
    assert loaded.visual.kind == "vertex"
    assert (np.asarray(loaded.visual.vertex_colors)[:, :3] == [0, 255, 0]).all()
