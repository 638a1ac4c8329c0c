import pytest
import torch
from stylize_helpers import RecordingRenderer, tiny_clip, tiny_config, write_tiny_mesh

from text2mesh import api
from text2mesh.mesh import prepare_mesh


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


def session(clip, tmp_path, **field):
    cfg = api.with_prompts(tiny_config(iters=2), "stripes")
    cfg.guidance.n_local_augs = 3
    for key, value in field.items():
        setattr(cfg.field, key, value)
    prepared = prepare_mesh(write_tiny_mesh(tmp_path / "blob.obj"), cfg.mesh)
    s = api._session(cfg, prepared, clip, torch.device("cpu"))
    s.problem.renderer = RecordingRenderer()
    return s


def test_one_rasterization_per_iteration_colour_and_grey_passes(clip, tmp_path):
    s = session(clip, tmp_path)
    calls = []
    original = s.problem.objective.__call__
    s.problem.objective = lambda terms: calls.append(terms) or original(terms)
    s.loop.one_step()
    (colors,) = s.problem.renderer.calls
    assert colors.shape[0] == 2 and torch.all(colors[1] == 0.5)
    (terms,) = calls
    n_views = s.cfg.views.n_views
    assert [(t.name, t.images.shape[0]) for t in terms] == [
        ("full", n_views), ("local", 3 * n_views), ("geometry", 3 * n_views)]
    assert all(t.images.shape[-2:] == tuple(clip.image_size) for t in terms)


def test_without_displacement_there_is_no_grey_pass(clip, tmp_path):
    s = session(clip, tmp_path, displacement=False)
    s.loop.one_step()
    assert s.problem.renderer.calls[0].shape[0] == 1


def test_one_step_changes_colours_and_displacements(clip, tmp_path):
    s = session(clip, tmp_path)
    for _ in range(2):
        s.loop.one_step()
    with torch.no_grad():
        styled = s.problem.styled()
    assert (styled.colors - 0.5).abs().max() > 0 and styled.displacement.abs().max() > 0
