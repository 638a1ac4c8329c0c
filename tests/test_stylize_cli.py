import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from stylize_helpers import (
    INPUT_SCALE,
    run_cli,
    save_tiny_clip_weights,
    set_flags,
    write_tiny_mesh,
)

from text2mesh.cli import main
from text2mesh.run import read_losses

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    return {"mesh": write_tiny_mesh(folder / "blob.obj"), "clip": save_tiny_clip_weights(folder / "tiny.pt")}


def tiny_args(files, *extra) -> list[str]:
    return ["--clip-model", "text2mesh-tiny-colour", "--clip-checkpoint", str(files["clip"]), "--device", "cpu",
            *set_flags(), *extra]



def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished_run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    before = digest(files["mesh"])
    main_args = ["stylize", str(files["mesh"]), "a red and white striped object", "-o", str(out), "--iters", "3",
                 "--quiet", *tiny_args(files)]
    try:
        main(main_args)
    except SystemExit as exc:
        assert not exc.code
    assert digest(files["mesh"]) == before  # the input is never touched
    return out


def test_cli_end_to_end_writes_a_loadable_styled_mesh_in_the_input_frame(finished_run, files):
    for name in ["blob_stylized.obj", "blob_stylized.ply", "config.yaml", "loss.csv", "checkpoint.pt"]:
        assert (finished_run / name).is_file(), name
    assert any((finished_run / "renders").glob("*.png"))
    assert len(read_losses(finished_run / "loss.csv")) == 3
    source = trimesh.load(files["mesh"], process=False)
    bound = 0.1 / _normalizing_scale(source)  # normratio in input units
    for name in ["blob_stylized.obj", "blob_stylized.ply"]:
        styled = trimesh.load(finished_run / name, process=False)
        assert len(styled.faces) == len(source.faces) and len(styled.vertices) == len(source.vertices)
        colors = np.asarray(styled.visual.vertex_colors)[:, :3].astype(int)
        assert np.abs(colors - 128).max() > 0, name  # not plain grey
        lo, hi = styled.bounds
        assert np.all(lo >= source.bounds[0] - bound - 1e-4) and np.all(hi <= source.bounds[1] + bound + 1e-4)
        assert np.all(np.abs(lo - source.bounds[0]) < 0.2 * (source.bounds[1] - source.bounds[0]))


def _normalizing_scale(mesh) -> float:
    center = (mesh.bounds[0] + mesh.bounds[1]) / 2
    return 1.0 / np.linalg.norm(mesh.vertices - center, axis=1).max()


def test_refuses_non_empty_output_without_overwrite(finished_run, files, capsys):
    code, _, err = run_cli(["stylize", str(files["mesh"]), "x", "-o", str(finished_run), "--iters", "1",
                            *tiny_args(files)], capsys)
    assert code == 1
    assert err.strip().count("\n") == 0 and "not empty" in err and "--overwrite" in err


def test_overwrite_next_to_the_input_keeps_the_input(files, capsys, tmp_path):
    mesh = tmp_path / "blob.obj"
    mesh.write_bytes(files["mesh"].read_bytes())
    before = digest(mesh)
    code, _, err = run_cli(["stylize", str(mesh), "stripes", "-o", str(tmp_path), "--overwrite", "--iters", "1",
                            "--quiet", *tiny_args(files)], capsys)
    assert code == 0, err
    assert digest(mesh) == before and (tmp_path / "blob_stylized.obj").is_file()


@pytest.mark.parametrize("prompt, message", [("", "prompt is empty"), ("   ", "prompt is empty")])
def test_empty_prompt_is_one_line_error(files, capsys, tmp_path, prompt, message):
    code, _, err = run_cli(["stylize", str(files["mesh"]), prompt, "-o", str(tmp_path / "o"), *tiny_args(files)], capsys)
    assert code == 1 and message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_missing_clip_weights_offline_fail_fast_with_the_ways_out(files, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.monotonic()
    code, _, err = run_cli(["stylize", str(files["mesh"]), "a vase", "-o", str(tmp_path / "o"),
                            "--iters", "1", "--clip-model", "ViT-B-32", "--clip-pretrained", "openai"], capsys)
    elapsed = time.monotonic() - start
    assert code == 1 and err.count("\n") == 1
    assert "ViT-B-32" in err and "openai" in err and "--clip-checkpoint" in err
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_default_folder_then_resume_continues_to_the_new_iteration_count(files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out_text, err = run_cli(["stylize", str(files["mesh"]), "Red Stripes!", "--iters", "2",
                                   *tiny_args(files)], capsys)
    assert code == 0, err
    (out,) = (tmp_path / "runs").iterdir()
    assert out.name.startswith("blob-red-stripes-") and str(out) in out_text
    first = read_losses(out / "loss.csv")
    code, _, err = run_cli(["stylize", "--resume", str(out), "--iters", "4", "--quiet"], capsys)
    assert code == 0, err
    losses = read_losses(out / "loss.csv")
    assert len(losses) == 4 and losses[:2] == first
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["loop"]["step"] == 4


def test_resume_rejects_a_folder_without_a_run(capsys, tmp_path):
    code, _, err = run_cli(["stylize", "--resume", str(tmp_path)], capsys)
    assert code == 1 and "not a run folder" in err


def test_ctrl_c_before_the_first_iteration_says_so_in_one_line(files, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("text2mesh.api._load_clip", interrupted)  # e.g. while CLIP loads
    out = tmp_path / "run"
    code, _, err = run_cli(["stylize", str(files["mesh"]), "stripes", "-o", str(out), *tiny_args(files)], capsys)
    assert code == 130
    assert err.strip().splitlines()[-1] == "text2mesh: stopped: interrupted by SIGINT"
    assert "Aborted" not in err and "Traceback" not in err
    assert not out.exists()  # nothing half-written


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_saves_a_valid_export_and_exits_non_zero(files, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "text2mesh", "stylize", str(files["mesh"]), "stripes", "-o", str(out),
            "--iters", "100000", "--quiet", *tiny_args(files), "--set", "optim.checkpoint_every=1"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    last = err.strip().splitlines()[-1]  # (a warning about the many CPU iterations may come first)
    assert last.startswith("text2mesh: stopped: interrupted by SIGINT") and "--resume" in last
    assert "Traceback" not in err
    styled = trimesh.load(out / "blob_stylized.obj", process=False)
    assert len(styled.faces) == 1280
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert 1 <= state["loop"]["step"] < 100000
    assert len(read_losses(out / "loss.csv")) == state["loop"]["step"]


def test_mesh_flags_decimate_and_reorient_the_working_mesh(files, capsys, tmp_path):
    out = tmp_path / "run"
    args = ["stylize", str(files["mesh"]), "a blue object", "-o", str(out), "--iters", "1", "--quiet",
            *tiny_args(files), "--max-faces", "400", "--up-axis", "z"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    styled = trimesh.load(out / "blob_stylized.obj", process=False)
    source = trimesh.load(files["mesh"], process=False)
    assert len(styled.faces) <= 400 < len(source.faces)
    # Outputs come back in the input's own frame whatever the working orientation was.
    assert np.allclose(styled.bounds, source.bounds, atol=0.15 * INPUT_SCALE)
    saved = (out / "config.yaml").read_text()
    assert "up_axis: z" in saved and "max_faces: 400" in saved


def test_mesh_flag_errors_are_one_line(files, capsys, tmp_path):
    code, _, err = run_cli(["stylize", str(files["mesh"]), "red", "--max-faces", "-3"], capsys)
    assert code != 0 and "--max-faces" in err and "Traceback" not in err


def test_bad_mesh_is_reported_before_clip_and_leaves_no_folder(capsys, tmp_path, monkeypatch):
    # Offline with uncached weights AND a directory for MESH: the mesh error comes first.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    code, _, err = run_cli(["stylize", str(tmp_path), "a red vase", "-o", str(out), "--clip-model", "ViT-B-32"], capsys)
    assert code != 0 and "is a directory" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_image_prompt_is_reported_before_anything_is_made(files, capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(["stylize", str(files["mesh"]), "a red vase", "-o", str(out),
                            "--image-prompt", str(tmp_path / "nowhere.png"), *tiny_args(files)], capsys)
    assert code == 1 and "image prompt not found" in err and err.count("\n") == 1
    assert not out.exists()


def run_fresh(args: list[str], files, tmp_path) -> subprocess.CompletedProcess:
    """``text2mesh ARGS`` in a fresh interpreter, printing whether torch was imported and the exit code."""
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "garbage.ply").write_bytes(bytes(range(256)) * 8)
    args = [a.format(mesh=files["mesh"], full=tmp_path / "full", garbage=tmp_path / "garbage.ply") for a in args]
    script = (
        "import sys\nfrom text2mesh.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('torch loaded' if 'torch' in sys.modules else 'no torch', code)\n"
    )
    return subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)


@pytest.mark.parametrize(
    "args, message",
    [
        (["stylize", "nowhere.obj", "a red vase"], "mesh file not found"),
        (["stylize", "{mesh}", "a red vase", "--image-prompt", "nowhere.png"], "image prompt not found"),
        (["stylize", "{mesh}", "a red vase", "--set", "optim.iters=-3"], "optim.iters"),
        (["stylize", "{mesh}", "a red vase", "-o", "{full}"], "not empty"),
        (["stylize", "{garbage}", "a red vase"], "cannot read mesh file"),
        (["imagine", "a red image", "--image-prompt", "nowhere.png"], "image prompt not found"),
        (["imagine", "a red image", "--size", "0", "64"], "imagine.size"),
        (["imagine", "a red image", "--generator", "diffusion", "--set", "imagine.steps=0"], "imagine.steps"),
        (["imagine", "a red image", "--set", "imagine.guidance_scale=strong"], "imagine.guidance_scale"),
        (["imagine", "a red image", "--set", "imagine.eta=2"], "imagine.eta"),
        (["imagine", "a red image", "--generator", "vqgan"], "--generator vqgan needs a model"),
        (["imagine", "a red image", "--generator", "diffusion"], "--generator diffusion needs a model"),
        (["imagine", "a red image", "--generator", "diffusion", "--diffusion", "text2mesh-tiny-diffusion",
          "--skip-steps", "3"], "--skip-steps starts from a noised --init-image"),
        (["imagine", "--prompt-schedule", "a seed^ ^a tree"], "a prompt of --prompt-schedule is empty"),
    ],
)
def test_input_mistakes_are_answered_before_torch_is_imported(files, tmp_path, args, message):
    """A typo costs a second, not the several seconds of loading torch (run in a fresh interpreter)."""
    done = run_fresh(args, files, tmp_path)
    assert done.stdout.split() == ["no", "torch", "1"], done.stdout + done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, option",
    [
        (["imagine", "a red image", "--generator", "diffusion", "--steps", "0"], "--steps"),
        (["imagine", "a red image", "--guidance-scale", "-1"], "--guidance-scale"),
        (["imagine", "a red image", "--skip-steps", "-2"], "--skip-steps"),
        (["imagine", "a red image", "--generator", "dream"], "--generator"),
    ],
)
def test_bad_option_values_are_usage_errors_before_torch_is_imported(files, tmp_path, args, option):
    done = run_fresh(args, files, tmp_path)
    assert done.stdout.split() == ["no", "torch", "2"], done.stdout + done.stderr
    assert option in done.stderr and "Traceback" not in done.stderr
