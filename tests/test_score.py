"""`text2mesh score`: X-Mesh's multi-view expert score, with the offline judge."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import trimesh
from stylize_helpers import run_cli, write_tiny_mesh

import text2mesh
from text2mesh.config import load_config
from text2mesh.guidance.clip import TINY_JUDGE, TINY_MODEL, load_clip
from text2mesh.score import (
    Score,
    iterations_to_score,
    multiview_score,
    render_views,
    table,
    view_angles,
)

MESHES = Path(__file__).resolve().parent.parent / "meshes"


@pytest.fixture(scope="module")
def judge():
    return load_clip(TINY_JUDGE)


def test_the_24_views_are_8_azimuths_at_three_elevations():
    azimuth, elevation = view_angles()
    assert len(azimuth) == 24
    assert sorted({round(math.degrees(e)) for e in elevation.tolist()}) == [-30, 0, 30]
    for e in (-30, 0, 30):
        ring = azimuth[(torch.rad2deg(elevation) - e).abs() < 1e-4]
        assert torch.allclose(torch.diff(ring), torch.full((7,), math.pi / 4))


def test_score_is_100_times_the_mean_cosine(judge):
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        image = F.normalize(judge.encode_images(images), dim=-1)
        text = F.normalize(judge.encode_text(["a red object"]), dim=-1)
    assert multiview_score(judge, images, "a red object") == pytest.approx(100 * float((image @ text.T).mean()), abs=1e-4)


def test_renders_frame_the_whole_mesh_on_white():
    sphere = trimesh.creation.icosphere(3)
    images = render_views(torch.tensor(sphere.vertices).float(), torch.tensor(sphere.faces), None)
    assert images.shape == (24, 3, 224, 224)
    border = torch.cat([images[..., :4, :].flatten(), images[..., -4:, :].flatten(), images[..., :, :4].flatten()])
    assert torch.all(border == 1.0)  # the unit sphere at radius 2.5 stays inside the frame
    assert (images < 0.9).float().mean() > 0.2


def test_judge_prefers_the_true_colour_of_a_bare_mesh(judge, tmp_path, capsys):
    mesh = trimesh.creation.icosphere(3)
    mesh.visual.vertex_colors = np.tile([220, 20, 20, 255], (len(mesh.vertices), 1))
    path = tmp_path / "red.ply"
    mesh.export(path)
    code, out, err = run_cli(["score", str(path), "a red object", "a blue object", "--clip-model", TINY_JUDGE], capsys)
    assert code == 0, err
    rows = [line.split("|")[1:-1] for line in out.splitlines()[2:]]
    scores = {row[1].strip(): float(row[2]) for row in rows}
    assert scores["a red object"] > scores["a blue object"] + 10


def test_run_folder_scores_its_own_prompt_and_writes_score_json(tmp_path, capsys):
    clip = load_clip(TINY_MODEL)
    cfg = load_config("tiny", overrides={"optim": {"iters": 20}, "output": {"turntable": False, "n_final_views": 0}})
    run = tmp_path / "run"
    text2mesh.stylize(write_tiny_mesh(tmp_path / "blob.obj"), "a green object", cfg, run, clip=clip)
    code, out, err = run_cli(["score", str(run), "--clip-model", TINY_JUDGE, "--iterations", "--csv", str(tmp_path / "t.csv")], capsys)
    assert code == 0, err
    (written,) = json.loads((run / "score.json").read_text())
    assert written["prompt"] == "a green object" and written["views"] == 24 and TINY_JUDGE in written["clip"]
    assert f"{written['score']:.2f}" in out
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "target,prompt,score,iterations_to_score"


def test_iterations_to_score_is_the_first_tenth_iteration_over_the_threshold(tmp_path):
    load_config("tiny")  # a valid config to copy
    from text2mesh.config import save_config

    save_config(load_config("tiny"), tmp_path / "config.yaml")
    rows = ["iteration,loss,full,local"] + [f"{i},0,{-0.01 * i:.4f},0" for i in range(1, 61)]
    (tmp_path / "loss.csv").write_text("\n".join(rows) + "\n")
    assert iterations_to_score(tmp_path, threshold=0.215) == 30  # 0.22 at 22 and beyond; checked every 10
    assert iterations_to_score(tmp_path, threshold=0.9) is None


def test_table_has_one_row_per_score():
    scores = [Score("a|b", "red", 12.345, "judge", 24, 30), Score("c", "blue", -1.0, "judge", 24)]
    lines = table(scores).splitlines()
    assert lines[0] == "| target | prompt | score | iterations_to_score |" and len(lines) == 4
    assert "a\\|b" in lines[2] and "12.35" in lines[2] and lines[2].endswith("| 30 |")
    assert table(scores, "csv").splitlines()[2] == "c,blue,-1.00,"


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing_run"], "no such run folder or mesh file"),
        (["{mesh}"], "give a PROMPT"),
        (["{bad}", "a red object"], "is it a mesh file"),
        (["{noprompt}", "a red object"], "cannot read"),
        (["{noprompt}"], "give a PROMPT"),
        (["{notrun}"], "not a run folder"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.obj"
    bad.write_text("this is not a mesh\n")
    (tmp_path / "notrun").mkdir()
    noprompt = tmp_path / "noprompt"
    noprompt.mkdir()
    cfg = load_config("tiny")
    cfg.prompts = []
    from text2mesh.config import save_config

    save_config(cfg, noprompt / "config.yaml")
    (noprompt / "checkpoint.pt").write_bytes(b"")
    paths = {"mesh": MESHES / "sphere.obj", "bad": bad, "noprompt": noprompt, "notrun": tmp_path / "notrun"}
    argv = ["score", *(a.format(**paths) for a in args), "--clip-model", TINY_JUDGE]
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_real_judge_offline_fails_fast_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    code, _, err = run_cli(["score", str(MESHES / "sphere.obj"), "a red object"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "ViT-B-32" in err and "laion400m_e31" in err and time.monotonic() - start < 10


@pytest.mark.slow
def test_judge_scores_a_run_steered_to_its_prompt_above_another_prompt_and_the_bare_mesh(judge, tmp_path):
    from text2mesh.score import score_targets

    cfg = load_config("draft", overrides={
        "guidance": {"clip_model": TINY_MODEL}, "optim": {"iters": 40, "device": "cpu"},
        "output": {"turntable": False, "n_final_views": 0, "before_after": False, "formats": ["ply"]}})
    run = tmp_path / "run"
    text2mesh.stylize(MESHES / "sphere.obj", "a red spiky object", cfg, run, clip=load_clip(TINY_MODEL))
    steered, other = score_targets([run], ["a red spiky object", "a blue smooth object"], judge)
    (bare,) = score_targets([MESHES / "sphere.obj"], ["a red spiky object"], judge)
    assert steered.score > other.score + 5 and steered.score > bare.score + 5, (steered, other, bare)


def test_a_picture_run_is_refused_in_one_line(tmp_path, capsys):
    from text2mesh.imaging import imagine

    cfg = load_config(overrides={"imagine": {"size": [32, 32], "render_size": 32}, "optim": {"iters": 1}})
    imagine("a red image", cfg, tmp_path / "picture", clip=load_clip(TINY_MODEL))
    for command in (["score", str(tmp_path / "picture"), "--clip-model", TINY_JUDGE],
                    ["stylize", "--resume", str(tmp_path / "picture")]):
        code, _, err = run_cli(command, capsys)
        assert code == 1 and "holds no stylized mesh" in err and err.count("\n") == 1, err


def test_a_mesh_without_prompt_is_named_before_the_judge_loads(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the default judge is not cached here
    code, _, err = run_cli(["score", str(MESHES / "sphere.obj")], capsys)
    assert code == 1 and "give a PROMPT" in err and err.count("\n") == 1, err
