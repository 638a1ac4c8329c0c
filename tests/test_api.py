import pytest
import torch
import trimesh
from stylize_helpers import tiny_clip, tiny_config, write_tiny_mesh

import text2mesh
from text2mesh.errors import ConfigError, RunFolderError


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


@pytest.fixture(scope="module")
def mesh_path(tmp_path_factory):
    return write_tiny_mesh(tmp_path_factory.mktemp("mesh") / "blob.obj")


@pytest.fixture(scope="module")
def four_iterations(clip, mesh_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "four"
    return text2mesh.stylize(mesh_path, "a red and white striped object", tiny_config(iters=4), out, clip=clip)


def test_result_holds_a_styled_mesh_in_the_input_frame(four_iterations, mesh_path):
    r = four_iterations
    source = trimesh.load(mesh_path, process=False)
    v = len(source.vertices)
    assert r.colors.shape == (v, 3) and r.displacements.shape == (v,) and r.vertices.shape == (v, 3)
    assert r.faces.shape == (len(source.faces), 3)
    assert (r.colors - 0.5).abs().max() > 1e-3  # no longer plain grey
    bound = r.config.field.normratio
    assert r.displacements.abs().max() <= bound + 1e-6
    # every output vertex lies within the displacement bound (in input units) of an input vertex
    gap = torch.cdist(r.vertices_input_frame().double(), torch.as_tensor(source.vertices)).min(dim=1).values
    assert gap.max() <= bound / r.prepared.transform.scale + 1e-4
    assert gap.max() > 0  # and it did move
    assert len(r.losses) == 4 and r.run_dir is not None
    assert r.to_trimesh().visual.vertex_colors.shape == (v, 4)


def test_run_folder_contents_and_load_run(four_iterations):
    run = four_iterations.run_dir
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "checkpoint.pt", "loss.csv", "blob_stylized.obj", "blob_stylized.ply", "renders"} <= names
    renders = {p.name for p in (run / "renders").iterdir()}
    assert {"before_after.png", "loss.png", "views.png", "progress_00002.png", "progress_00004.png"} <= renders
    again = text2mesh.load_run(run)
    assert torch.allclose(again.colors, four_iterations.colors, atol=1e-6)
    assert torch.allclose(again.vertices, four_iterations.vertices, atol=1e-6)
    assert again.losses == pytest.approx(four_iterations.losses, abs=1e-5)
    assert again.config.prompts == ["a red and white striped object"]


def test_same_seed_same_result_other_seed_differs(four_iterations, clip, mesh_path):
    same = text2mesh.stylize(mesh_path, "a red and white striped object", tiny_config(iters=4), clip=clip)
    other = text2mesh.stylize(mesh_path, "a red and white striped object", tiny_config(iters=4, seed=7), clip=clip)
    assert same.run_dir is None
    assert torch.equal(same.colors, four_iterations.colors)
    assert same.losses == four_iterations.losses
    assert not torch.allclose(other.colors, same.colors)


def test_resume_continues_from_the_saved_step(four_iterations, clip, mesh_path, tmp_path):
    text2mesh.stylize(mesh_path, "a red and white striped object", tiny_config(iters=2), tmp_path / "r", clip=clip)
    resumed = text2mesh.resume(tmp_path / "r", clip=clip, iters=4)
    assert len(resumed.losses) == 4
    assert resumed.losses == pytest.approx(four_iterations.losses, abs=1e-5)
    assert torch.allclose(resumed.colors, four_iterations.colors, atol=1e-5)
    assert text2mesh.load_config(path=tmp_path / "r" / "config.yaml").optim.iters == 4


def test_refuses_a_non_empty_folder_and_empty_prompts(four_iterations, clip, mesh_path):
    with pytest.raises(RunFolderError, match="not empty"):
        text2mesh.stylize(mesh_path, "x", tiny_config(iters=1), four_iterations.run_dir, clip=clip)
    with pytest.raises(ConfigError, match="empty"):
        text2mesh.stylize(mesh_path, "", tiny_config(iters=1), clip=clip)


def test_weighted_prompts_and_negatives_are_saved_in_the_config(clip, mesh_path, tmp_path):
    r = text2mesh.stylize(mesh_path, "stripes", tiny_config(iters=1), tmp_path / "w", clip=clip,
                          prompts=["red:0.5"], negatives=["blue"])
    saved = text2mesh.load_config(path=tmp_path / "w" / "config.yaml")
    assert saved.prompts == ["stripes", "red:0.5"] and saved.negatives == ["blue"]
    assert r.config.prompts == saved.prompts


def test_main_prompt_with_a_colon_keeps_weight_one():
    from text2mesh.api import check_targets, with_prompts

    cfg = with_prompts(tiny_config(), "a ratio of 3:2", ["red:0.5"])
    targets = check_targets(cfg)
    assert [(t.value, t.weight) for t in targets] == [("a ratio of 3:2", 1.0), ("red", 0.5)]


def test_presets_load_and_demos_carry_their_prompts():
    from text2mesh.config import list_presets, load_config

    names = set(list_presets())
    assert {"default", "draft", "candle", "horse", "lamp", "vase", "person", "shoe", "alien"} <= names
    candle, person, draft = load_config("candle"), load_config("person"), load_config("draft")
    assert candle.prompts == ["an image of a candle made of colorful crochet"] and candle.optim.seed == 102
    assert person.field.sigma == 12 and person.field.symmetry and person.guidance.local_crop == [0.4, 0.4]
    assert draft.optim.iters < load_config("default").optim.iters
    tiny = load_config("tiny")  # the offline demo: the draft run with the shipped tiny CLIP, displacement on
    assert tiny.guidance.clip_model == "text2mesh-tiny" and tiny.field.displacement
    assert tiny.optim.iters == draft.optim.iters


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this machine")
def test_cuda_run_is_reproducible(mesh_path):
    clip = tiny_clip().to("cuda")
    cfg = tiny_config(iters=3, device="cuda")
    a = text2mesh.stylize(mesh_path, "stripes", cfg, clip=clip)
    b = text2mesh.stylize(mesh_path, "stripes", cfg, clip=clip)
    assert a.losses == pytest.approx(b.losses, abs=1e-5) and (a.colors - 0.5).abs().max() > 1e-3


def test_top_level_names_stay_the_api_after_every_module_has_loaded():
    """`text2mesh.imagine(...)` is a function however often it is called and whatever was imported
    before: no submodule of the package may share a top-level API name (importing a submodule
    binds its name on the package)."""
    import importlib
    import pkgutil
    import types

    for module in pkgutil.iter_modules(text2mesh.__path__):
        if not module.name.startswith("_"):  # __main__ runs the CLI
            importlib.import_module(f"text2mesh.{module.name}")
    for name in text2mesh.__all__:
        assert not isinstance(getattr(text2mesh, name), types.ModuleType), name
    assert callable(text2mesh.imagine) and callable(text2mesh.imagine)
