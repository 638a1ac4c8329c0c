"""Pictures: turntables start at the front and go all the way round; files open as written."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from text2mesh.export import pictures
from text2mesh.export.files import ExportError
from text2mesh.export.pictures import (
    PictureSettings,
    before_after,
    loss_plot,
    save_gif,
    save_mp4,
    save_png,
    turntable,
    view_grid,
)
from text2mesh.export.runs import write_pictures

SMALL = PictureSettings(size=64, lighting="unlit")
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def two_faced():
    """A unit sphere whose front (+z) half is red and back half blue."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    vertices = sphere.vertices.astype(np.float32)
    colors = np.where(vertices[:, 2:] > 0, RED, BLUE).astype(np.float32)
    return vertices, sphere.faces.astype(np.int64), colors


def _mean_color(picture: np.ndarray) -> np.ndarray:
    """Mean colour of the non-white pixels, in [0, 1]."""
    mask = (picture < 250).any(-1)
    return picture[mask].mean(0) / 255.0


def test_turntable_starts_at_the_front_and_turns_round(two_faced):
    frames = turntable(*two_faced, n_frames=4, settings=SMALL)
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    front, side, back = _mean_color(frames[0]), _mean_color(frames[1]), _mean_color(frames[2])
    assert front[0] > 0.9 and front[2] < 0.1
    assert back[2] > 0.9 and back[0] < 0.1
    assert 0.3 < side[0] < 0.7 and 0.3 < side[2] < 0.7
    centre = frames[0][28:36, 28:36]
    assert (centre < 250).any(-1).all(), "the mesh should fill the middle of the picture"
    corner = frames[0][:4, :4]
    assert (corner == 255).all(), "the background is white and the mesh fits in the frame"


def test_before_after_shows_the_base_above_the_stylized_mesh(two_faced):
    vertices, faces, colors = two_faced
    picture = before_after((vertices, faces, None), (vertices, faces, colors), n_views=2, settings=SMALL)
    assert picture.shape == (128, 128, 3)
    before, after = _mean_color(picture[8:64]), _mean_color(picture[72:])
    assert np.ptp(before) < 0.05, "the base mesh is drawn plain grey"
    assert after[0] > 0.7, "the stylized mesh is drawn in its colours"


def test_before_after_of_one_shape_draws_both_rows_as_two_separate_drawings_would(two_faced):
    vertices, faces, colors = two_faced
    moved = vertices * 0.9  # another shape: drawn by two rasterizations
    shared = before_after((vertices, faces, None), (vertices, faces, colors), n_views=2, settings=SMALL)
    apart = before_after((moved, faces, None), (vertices, faces, colors), n_views=2, settings=SMALL)
    alone = before_after((vertices, faces, colors), (vertices, faces, colors), n_views=2, settings=SMALL)
    assert np.array_equal(shared[64:], apart[-64:]) and np.array_equal(shared[64:], alone[64:])
    grey_apart = before_after((vertices, faces, None), (moved, faces, colors), n_views=2, settings=SMALL)
    assert np.array_equal(shared[:64], grey_apart[:64])
    assert not np.array_equal(shared[:64], alone[:64]), "the base is drawn grey, not in the style's colours"


def test_a_moved_surface_gets_a_grey_row_of_its_new_shape_between_before_and_after(two_faced):
    vertices, faces, colors = two_faced
    moved = vertices * np.array([1.0, 0.6, 1.0])  # squashed: the grey row must show the new shape
    picture = before_after((vertices, faces, None), (moved, faces, colors), n_views=2, settings=SMALL)
    assert picture.shape == (192, 128, 3)
    before, grey, after = picture[8:64], picture[72:128], picture[136:]
    assert np.ptp(_mean_color(grey)) < 0.05 and _mean_color(after)[0] > 0.7
    covered = lambda row: int((row.min(axis=2) < 250).sum())
    assert abs(covered(grey) - covered(after)) < 0.05 * covered(after) and covered(grey) < 0.8 * covered(before)


def test_a_renderer_made_with_other_options_shares_the_topology_and_draws_as_a_fresh_one(two_faced, monkeypatch):
    from text2mesh.render import Renderer
    from text2mesh.render import renderer as renderer_module

    calls = []
    original = renderer_module.face_neighbors
    monkeypatch.setattr(renderer_module, "face_neighbors", lambda faces: calls.append(1) or original(faces))
    vertices, faces, colors = two_faced
    plain = Renderer(antialias=False)
    frames = turntable(vertices, faces, colors, n_frames=2, settings=SMALL, renderer=plain)
    smooth = plain.with_options(antialias=True)
    assert smooth.antialias and not plain.antialias
    shared = turntable(vertices, faces, colors, n_frames=2, settings=SMALL, renderer=smooth)
    assert len(calls) == 1, "the topology is found once for both renderers"
    fresh = turntable(vertices, faces, colors, n_frames=2, settings=SMALL, renderer=Renderer(antialias=True))
    assert all(np.array_equal(a, b) for a, b in zip(shared, fresh))
    assert not all(np.array_equal(a, b) for a, b in zip(shared, frames)), "antialiasing changes the edges"


def test_view_grid_tiles_views_row_by_row(two_faced):
    grid = view_grid(*two_faced, n_views=5, columns=3, settings=SMALL)
    assert grid.shape == (128, 192, 3)
    assert _mean_color(grid[:64, :64])[0] > 0.9  # front view first
    assert (grid[64:, 128:] == 255).all()  # the sixth tile is empty


def test_loss_plot_draws_the_curve_going_down():
    losses = np.linspace(1.0, 0.2, 100)
    losses[50] = np.nan
    chart = loss_plot(losses, size=(320, 200))
    assert chart.shape == (200, 320, 3)
    blue = (chart[..., 2] > 150) & (chart[..., 0] < 100)
    rows, cols = np.nonzero(blue)
    assert len(rows) > 100
    assert rows[cols < 120].mean() < rows[cols > 240].mean()


def test_png_and_gif_files_hold_the_frames(tmp_path, two_faced):
    frames = turntable(*two_faced, n_frames=3, settings=SMALL)
    png = save_png(frames[0], tmp_path / "front.png")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), frames[0])
    gif = Image.open(save_gif(frames, tmp_path / "turn.gif", fps=10))
    assert gif.n_frames == 3 and gif.info["loop"] == 0 and gif.info["duration"] == 100
    for index, frame in enumerate(frames):
        gif.seek(index)
        decoded = np.asarray(gif.convert("RGB")).astype(int)
        assert np.abs(decoded - frame).mean() < 3, "palette quantization should be nearly lossless here"


def test_write_pictures_shows_a_bar_over_the_files_it_writes(tmp_path, two_faced, capsys):
    written = write_pictures(tmp_path, two_faced, two_faced, [3.0, 2.0, 1.0], SMALL, n_frames=4, n_views=2,
                             mp4=False, progress=True)
    assert [p.name for p in written] == ["before_after.png", "turntable.gif", "views.png", "loss.png"]
    err = capsys.readouterr().err
    assert "pictures:" in err and "/4 [" in err, err  # the bar counts the 4 files (tqdm may skip redraws)
    write_pictures(tmp_path, two_faced, None, [], SMALL, n_frames=2, n_views=0, mp4=False, progress=False)
    assert capsys.readouterr().err == ""


NO_ENCODER = "imageio-ffmpeg not installed (pip install '.[video]')"


@pytest.mark.skipif(not pictures.video_encoder_available(), reason=NO_ENCODER)
def test_mp4_has_every_frame(tmp_path, two_faced):
    import imageio.v2 as imageio

    frames = turntable(*two_faced, n_frames=4, settings=PictureSettings(size=63, lighting="unlit"))
    path = save_mp4(frames, tmp_path / "turn.mp4", fps=8)
    decoded = imageio.mimread(path)
    assert len(decoded) == 4 and decoded[0].shape == (64, 64, 3)  # padded to even size
    assert np.abs(decoded[0][:63, :63].astype(int) - frames[0]).mean() < 8


def test_mp4_without_encoder_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(pictures, "video_encoder_available", lambda: False)
    with pytest.raises(ExportError, match="pip install imageio-ffmpeg"):
        save_mp4([np.zeros((8, 8, 3), np.uint8)], tmp_path / "x.mp4")
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this machine")
def test_pictures_on_cuda_match_the_cpu(two_faced):
    cpu = np.stack(turntable(*two_faced, n_frames=2, settings=SMALL)).astype(int)
    cuda = np.stack(turntable(*two_faced, n_frames=2, settings=dataclasses.replace(SMALL, device="cuda"))).astype(int)
    assert np.abs(cpu - cuda).mean() < 1.0
