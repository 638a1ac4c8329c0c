"""`text2mesh export` and `text2mesh render` on run folders and plain mesh files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from export_helpers import glb_texture, nearest_input_vertex, sample_bilinear
from PIL import Image

from text2mesh.cli import main
from text2mesh.config import Config, FieldConfig, MeshConfig, load_config
from text2mesh.export import export_mesh
from text2mesh.export.runs import export_run

ONE_STEP = 1.0 / 255.0 + 1e-6


def _ellipsoid(path):
    """An off-centre ellipsoid (an input frame unlike the normalized one) saved as OBJ."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    sphere.apply_scale([3.0, 1.0, 1.5])
    sphere.apply_translation([5.0, 0.0, -2.0])
    sphere.export(path)
    return sphere


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real (tiny, 1-iteration) stylize run folder, made with a random-weight tiny CLIP."""
    from clip_helpers import random_vit

    from text2mesh import api

    folder = tmp_path_factory.mktemp("run")
    _ellipsoid(folder / "blob.obj")
    cfg = load_config(overrides={
        "optim": {"iters": 1, "snapshot_every": 0, "checkpoint_every": 1, "device": "cpu"},
        "render": {"resolution": 32},
        "views": {"n_views": 1},
        "guidance": {"clip_model": "text2mesh-tiny", "n_local_augs": 0, "geometry_loss": False},
        "field": {"width": 32, "n_frequencies": 16, "depth": 1, "head_depth": 1},
        "mesh": {"max_edge": None},
        "output": {"turntable": False, "before_after": False, "n_final_views": 0, "formats": ["ply"]},
    })
    clip = random_vit(0)
    result = api.stylize(folder / "blob.obj", "a red blob", cfg, folder / "run", clip=clip)
    return result.run_dir


def test_export_run_in_each_format_matches_the_run(run_dir, tmp_path):
    from text2mesh.api import load_run

    result = load_run(run_dir)
    expected = result.vertices_input_frame().numpy()
    for fmt in ("obj", "ply"):
        main_exit(["export", str(run_dir), "--format", fmt, "-o", str(tmp_path / f"out.{fmt}")])
        loaded = trimesh.load(tmp_path / f"out.{fmt}", process=False, force="mesh")
        assert len(loaded.vertices) == len(expected)
        np.testing.assert_allclose(loaded.vertices, expected, atol=1e-5)
        np.testing.assert_allclose(loaded.visual.vertex_colors[:, :3] / 255.0, result.colors.numpy(), atol=ONE_STEP)
    main_exit(["export", str(run_dir)])  # default: a GLB in the run folder
    assert (run_dir / "blob_stylized.glb").is_file()


def test_export_without_displacement_gives_back_the_input_shape(run_dir, tmp_path):
    main_exit(["export", str(run_dir), "--no-displacement", "-o", str(tmp_path / "base.ply")])
    original = trimesh.load(run_dir.parent / "blob.obj", process=False, force="mesh")
    loaded = trimesh.load(tmp_path / "base.ply", process=False, force="mesh")
    np.testing.assert_allclose(loaded.bounds, original.bounds, atol=1e-4)


def test_export_rejects_a_format_its_file_name_contradicts(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["export", str(run_dir), "--format", "ply", "-o", str(tmp_path / "x.glb")])
    assert exit.value.code == 1
    assert "does not end in .ply" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_baked_texture_samples_the_style_field_between_vertices(tmp_path):
    """export_run's texture shows the field itself: right at vertices and inside faces."""
    from text2mesh.api import StyleResult
    from text2mesh.field import StyleField
    from text2mesh.mesh import prepare_mesh

    prepared = prepare_mesh(_ellipsoid(tmp_path / "blob.obj"), MeshConfig(max_edge=None))
    generator = torch.Generator().manual_seed(0)
    field_cfg = FieldConfig(width=32, n_frequencies=32, sigma=2.0)
    field = StyleField(field_cfg, points=prepared.mesh.vertices, generator=generator)
    with torch.no_grad():
        for parameter in field.parameters():  # a trained-looking field: colours vary over the surface
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.2)
        colors, displacement = field(prepared.mesh.vertices)
    result = StyleResult(Config(), prepared, field.eval(), colors, displacement * 0, prepared.mesh.vertices, [])
    assert colors.std(0).min() > 0.03

    (path,) = export_run(result, tmp_path / "tex.glb", texture=256)
    positions, faces, uv, image, _ = glb_texture(path)
    input_vertices = result.vertices_input_frame().numpy()
    source = nearest_input_vertex(positions, input_vertices)
    at_vertices = np.abs(sample_bilinear(image, uv) - colors.numpy()[source])
    assert np.median(at_vertices) < 3 / 255

    centre_uv = uv[faces].mean(1)
    centre_xyz = prepared.mesh.vertices.numpy()[source[faces]].mean(1)
    with torch.no_grad():
        truth = field(torch.as_tensor(centre_xyz))[0].numpy()
    at_centres = np.abs(sample_bilinear(image, centre_uv) - truth)
    assert np.median(at_centres) < 3 / 255


def test_baked_texture_keeps_the_input_colors_a_run_started_from(tmp_path):
    """Runs with mesh.use_input_colors: the texture shows base colours + the field's change."""
    from text2mesh.api import StyleResult
    from text2mesh.field import StyleField
    from text2mesh.mesh import prepare_mesh, vertex_normals
    from text2mesh.stylizer import style_mesh

    blob = _ellipsoid(tmp_path / "blob.obj")
    base = np.where(blob.vertices[:, :1] > 5.0, [0.9, 0.2, 0.1], [0.1, 0.3, 0.9])
    export_mesh(blob.vertices, blob.faces, base, tmp_path / "blob.ply")
    cfg = Config(mesh=MeshConfig(max_edge=None, use_input_colors=True))
    prepared = prepare_mesh(tmp_path / "blob.ply", cfg.mesh)
    field = StyleField(FieldConfig(width=16, n_frequencies=16), points=prepared.mesh.vertices,
                       generator=torch.Generator().manual_seed(0)).eval()
    mesh = prepared.mesh
    with torch.no_grad():
        styled = style_mesh(field, mesh, vertex_normals(mesh.vertices, mesh.faces), base_colors=mesh.colors)
    result = StyleResult(cfg, prepared, field, styled.colors, styled.displacement, styled.vertices, [])

    (path,) = export_run(result, tmp_path / "tex.glb", texture=128)
    positions, _, uv, image, _ = glb_texture(path)
    source = nearest_input_vertex(positions, result.vertices_input_frame().numpy())
    at_vertices = np.abs(sample_bilinear(image, uv) - styled.colors.numpy()[source])
    assert np.median(at_vertices) < 3 / 255


def main_exit(argv):
    """Run the CLI in-process; a zero exit is success."""
    try:
        main(argv)
    except SystemExit as exit:
        assert not exit.code, f"text2mesh {' '.join(argv)} exited with {exit.code}"


def test_render_mesh_file_writes_gif_grid_and_before_after(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=2)
    colors = np.where(sphere.vertices[:, 2:] > 0, [1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    export_mesh(sphere.vertices * 7 + 3, sphere.faces, colors, tmp_path / "ball.ply")
    out = tmp_path / "pictures"
    main_exit(["render", str(tmp_path / "ball.ply"), "-o", str(out), "--size", "48", "--frames", "4",
               "--views", "4", "--no-mp4", "--device", "cpu", "--lighting", "unlit"])
    assert sorted(p.name for p in out.iterdir()) == ["before_after.png", "turntable.gif", "views.png"]
    gif = Image.open(out / "turntable.gif")
    assert gif.n_frames == 4 and gif.size == (48, 48)
    views = np.asarray(Image.open(out / "views.png").convert("RGB"))
    assert views.shape == (48, 192, 3)
    front = views[:, :48].reshape(-1, 3).astype(int)
    assert ((front[:, 0] > 200) & (front[:, 2] < 50)).mean() > 0.2, "the front view shows the red (+z) half"
    before_after = np.asarray(Image.open(out / "before_after.png").convert("RGB"))
    assert before_after.shape == (96, 96, 3)


def test_render_run_writes_into_its_renders_folder(run_dir):
    main_exit(["render", str(run_dir), "--size", "32", "--frames", "2", "--views", "2", "--no-mp4", "--device", "cpu"])
    names = {p.name for p in (run_dir / "renders").iterdir()}
    assert {"before_after.png", "turntable.gif", "views.png", "loss.png"} <= names


def test_render_mesh_file_writes_next_to_the_mesh_by_default(tmp_path, monkeypatch):
    sphere = trimesh.creation.icosphere(subdivisions=1)
    (tmp_path / "meshes").mkdir()
    export_mesh(sphere.vertices, sphere.faces, None, tmp_path / "meshes" / "ball.ply")
    monkeypatch.chdir(tmp_path)
    main_exit(["render", "meshes/ball.ply", "--size", "32", "--frames", "2", "--views", "2", "--no-mp4", "--device", "cpu"])
    assert (tmp_path / "meshes" / "ball_renders" / "turntable.gif").is_file()
    assert not (tmp_path / "ball_renders").exists()
