"""The 2D mode end to end: generators learn, init and image prompts, vary, the CLI."""

import numpy as np
import pytest
import torch
from clip_helpers import random_vit, tiny_clip_is_shipped
from PIL import Image

from text2mesh.cli import main
from text2mesh.config import load_config
from text2mesh.generators import build_canvas
from text2mesh.generators.vqgan import tiny_vqgan_path
from text2mesh.imaging import imagine, load_image_run, vary

pytestmark = pytest.mark.usefixtures("one_thread")


needs_tiny = pytest.mark.skipif(
    not tiny_clip_is_shipped(),
    reason="the trained tiny CLIPs (text2mesh/assets/text2mesh-tiny-*.pt) are not there; run scripts/train_tiny_clip.py",
)


needs_tiny_vqgan = pytest.mark.skipif(
    not (tiny_vqgan_path() / "config.json").is_file(),
    reason="the trained tiny VQ autoencoder (text2mesh/assets/text2mesh-tiny-vqgan) is not there; "
           "run scripts/train_tiny_vqgan.py",
)


@pytest.fixture(scope="module")
def clip():
    return random_vit(0)



def small_config(generator="field", iters=12, **imagine_settings):
    settings = {"generator": generator, "size": [32, 32], "render_size": 32, "n_cutouts": 4, "n_strokes": 16}
    if generator == "field":
        settings["lr"] = 5e-3  # few iterations: faster than the 1500-iteration default
    settings.update(imagine_settings)
    return load_config(
        overrides={
            "imagine": settings,
            "field": {"width": 32, "n_frequencies": 32, "depth": 1, "head_depth": 1},
            "optim": {"iters": iters, "checkpoint_every": 4, "seed": 0},
        }
    )


def similarity(clip, image, text):
    with torch.no_grad():
        return float(clip.encode_images(image[None]) @ clip.encode_text([text]).T)


def save_png(path, array):
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return str(path)


@pytest.mark.parametrize("generator", ["field", "pixels", "strokes"])
def test_each_generator_moves_the_picture_toward_the_prompt(clip, generator):
    cfg = small_config(generator)
    before = build_canvas(cfg).texture((32, 32)).detach()
    result = imagine("a red image", cfg, clip=clip)
    assert result.image.shape == (3, 32, 32)
    gain = similarity(clip, result.image, "a red image") - similarity(clip, before, "a red image")
    assert gain > 0.02, gain
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3])


def mean_colour(image):
    return image.mean(dim=(1, 2))


def assert_leans_without_collapsing(result, channel):
    """The prompt's channel leads the others by 0.15, the picture is not one flat colour, and
    the loss still moves in the second half of the run."""
    colour = mean_colour(result.image)
    others = [c for c in range(3) if c != channel]
    assert (colour[channel] - colour[others] >= 0.15).all(), colour
    assert result.image.reshape(3, -1).std(dim=1).max() > 0.05, "the picture is one flat colour"
    late = result.losses[len(result.losses) // 2 :]
    assert max(late) - min(late) > 1e-3, "the loss stopped moving"


# Each generator at its default rate, 64x64, 8 cutouts: strokes with wide brushes (narrow ones
# leave most of the white canvas showing) and a longer run (at 120 steps, on torch 2.14 and one
# thread, green led blue by 0.149; at 160 by 0.179, seed 0 by 0.2); vqgan with the shipped tiny VQ model.
LEAN_SETTINGS = {
    "field": ({}, 80),
    "pixels": ({}, 80),
    "strokes": ({"stroke_width": [0.15, 0.35]}, 160),
    "vqgan": ({"vqgan": "text2mesh-tiny-vqgan"}, 60),
}


@needs_tiny
@needs_tiny_vqgan
@pytest.mark.parametrize("prompt, channel", [("a red image", 0), ("a green image", 1)])
@pytest.mark.parametrize("generator", list(LEAN_SETTINGS))
def test_every_generator_leans_to_the_prompt_without_collapsing_to_a_flat_colour(tiny, generator, prompt, channel):
    # The field at the 3D field's 5e-4 was one saturated colour from step 1 on (magenta for
    # red), with a constant loss: saturated tanh colours have no gradient left.
    settings, iters = LEAN_SETTINGS[generator]
    overrides = {"guidance": {"clip_model": "text2mesh-tiny"},
                 "imagine": {"generator": generator, "size": [64, 64], "n_cutouts": 8, **settings},
                 "optim": {"iters": iters, "seed": 2, "snapshot_every": 0}}
    result = imagine(prompt, load_config(overrides=overrides), clip=tiny)
    assert_leans_without_collapsing(result, channel)


@needs_tiny_vqgan
def test_vqgan_init_image_is_encoded_to_its_latents():
    from text2mesh.guidance.synthetic import make_batch

    picture = make_batch(1, 64, torch.Generator().manual_seed(3), plain_fraction=1.0).images[0]
    cfg = small_config("vqgan", vqgan="text2mesh-tiny-vqgan", size=[64, 64], render_size=64)
    with torch.no_grad():
        started = build_canvas(cfg, init=picture).texture((64, 64))
        random = build_canvas(cfg).texture((64, 64))
    error = (started - picture).abs().mean()
    assert error < 0.1 and error < 0.5 * (random - picture).abs().mean(), error


def test_prompt_schedule_switches_the_main_prompt_and_keeps_the_rest(clip):
    from text2mesh.imaging import ImagineProblem, cutout_schedule, stage_configs
    from text2mesh.targets import with_prompts

    cfg = with_prompts(small_config(prompt_schedule=["a seed", "a sprout", "a tree"], change_every=10), "a seed",
                       negatives=["blurry"])
    stages = stage_configs(cfg)
    assert [s.prompts for s in stages] == [["a seed"], ["a sprout"], ["a tree"]]
    assert all(s.negatives == ["blurry"] for s in stages)
    from text2mesh.guidance.objective import Objective
    from text2mesh.imaging import run_targets

    problem = ImagineProblem(build_canvas(cfg), [Objective(clip, run_targets(s)) for s in stages], cutout_schedule(cfg),
                             iters=40, size=(32, 32), clip_size=tuple(clip.image_size), change_every=10)
    mains = [problem.objective_at(step).targets[0].value for step in (0, 9, 10, 25, 39)]
    assert mains == ["a seed", "a seed", "a sprout", "a tree", "a tree"]


@needs_tiny
def test_prompt_schedule_story_ends_on_its_last_prompt(tiny):
    cfg = small_config("field", iters=50, prompt_schedule=["a red image", "a green image"], change_every=20)
    result = imagine(None, cfg, clip=tiny)
    colour = mean_colour(result.image)
    assert colour[1] > colour[0] + 0.05, colour


@pytest.mark.parametrize("generator", ["field", "pixels"])
def test_init_image_with_zero_prompt_weight_stays_the_init_image(clip, generator, tmp_path):
    y, x = np.mgrid[0:32, 0:32]
    picture = np.stack([x * 8, y * 8, 255 - (x + y) * 4], axis=-1)
    init = save_png(tmp_path / "init.png", picture)
    result = imagine(None, small_config(generator, iters=4), prompts=["a red image:0"], init_image=init, clip=clip)
    out = (result.image.permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(out - picture).max() <= 2


def test_image_prompt_pulls_the_canvas_toward_its_colours(clip, tmp_path):
    blue = save_png(tmp_path / "blue.png", np.full((32, 32, 3), (20, 40, 230)))
    cfg = small_config("pixels", iters=20)
    before = mean_colour(build_canvas(cfg).texture((32, 32)).detach())
    after = mean_colour(imagine(None, cfg, image_prompts=[blue], clip=clip).image)
    blueness = lambda c: float(c[2] - (c[0] + c[1]) / 2)
    assert blueness(after) > blueness(before) + 0.05, (before, after)


@pytest.mark.parametrize("generator", ["pixels", pytest.param("vqgan", marks=needs_tiny_vqgan)])
def test_vary_strength_zero_reproduces_the_parent_and_more_differs(clip, tmp_path, generator):
    # vqgan: the painter's small random step in latent space from the parent's latents
    cfg = small_config(generator, iters=4, vqgan="text2mesh-tiny-vqgan")
    parent = imagine("a red image", cfg, tmp_path / "parent", clip=clip)
    same = vary(parent.run_dir, strength=0.0, n=1, output_dir=tmp_path / "same")
    assert torch.allclose(same[0].image, parent.image, atol=1e-6)
    moved = vary(parent.run_dir, strength=0.5, n=2, output_dir=tmp_path / "moved", iters=2, clip=clip)
    for result in moved:
        assert (result.image - parent.image).abs().mean() > 0.01
    assert (moved[0].image - moved[1].image).abs().mean() > 0.01
    assert (tmp_path / "moved" / "contact_sheet.png").is_file()
    reloaded = load_image_run(moved[0].run_dir)
    assert torch.allclose(reloaded.image, moved[0].image, atol=1e-6)


@pytest.fixture
def cli_clip(monkeypatch, clip):
    """The CLI loads its CLIP by name; hand it the random tiny one (no weights needed)."""
    monkeypatch.setattr("text2mesh.guidance.clip.load_clip", lambda *args, **kwargs: clip)


def run_cli(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


FAST = ["--iters", "2", "--quiet", "--clip-model", "text2mesh-tiny", "--set", "imagine.n_cutouts=2",
        "--set", "imagine.render_size=24", "--set", "imagine.n_strokes=8", "--set", "imagine.gif_frames=2",
        "--set", "field.width=16", "--set", "field.n_frequencies=16", "--set", "field.depth=1"]


def test_cli_imagine_writes_the_picture_at_the_asked_size_and_its_animations(cli_clip, tmp_path):
    out = tmp_path / "run"
    code = run_cli(["imagine", "a red image", "-o", str(out), "--size", "40", "24", "--generator", "strokes", *FAST])
    assert code == 0
    with Image.open(out / "image.png") as img:
        assert img.size == (40, 24)
    for name in ("progress.gif", "strokes.gif", "config.yaml", "checkpoint.pt", "loss.csv"):
        assert (out / name).is_file(), name
    with Image.open(out / "strokes.gif") as gif:
        assert gif.n_frames == 9  # the empty canvas, then one more stroke per frame
    assert load_config(path=out / "config.yaml").imagine.generator == "strokes"


def test_cli_variations_make_a_contact_sheet(cli_clip, tmp_path):
    out = tmp_path / "vars"
    argv = ["imagine", "a red image", "-o", str(out), "--variations", "2", "--seed", "5", "--size", "24", "24", *FAST]
    assert run_cli(argv) == 0
    assert (out / "seed-5" / "image.png").is_file() and (out / "seed-6" / "image.png").is_file()
    assert (out / "contact_sheet.png").is_file()
    assert run_cli(["vary", str(out / "seed-5"), "--strength", "0.2", "-n", "2", "--iters", "1", "--quiet"]) == 0
    assert (out / "seed-5" / "variations" / "contact_sheet.png").is_file()
    assert not (out / "renders").exists() and not (out / "seed-5" / "variations" / "renders").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--size", "0", "10"], "imagine.size: 0 is outside"),
        (["--init-image", "missing.png"], "init image not found"),
        (["--set", "imagine.cutout_end=[0.5, 0.2]"], "cutout_end"),
        (["--generator", "vqgan"], "--generator vqgan needs a model"),
        (["--generator", "vqgan", "--vqgan", "missing.ckpt"], "VQGAN checkpoint not found"),
    ],
)
def test_cli_imagine_bad_input_is_a_one_line_error(cli_clip, tmp_path, capsys, argv, message):
    code = run_cli(["imagine", "a red image", "-o", str(tmp_path / "bad"), *FAST, *argv])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_a_prompt_of_only_negative_parts_is_a_one_line_error(cli_clip, tmp_path, capsys):
    code = run_cli(["imagine", "fog:-1 | blurry:-0.5", "-o", str(tmp_path / "bad"), *FAST])
    err = capsys.readouterr().err
    assert code == 1 and "no prompt to aim for" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


def test_cli_unreadable_init_image_is_a_clear_error(cli_clip, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    code = run_cli(["imagine", "a red image", "-o", str(tmp_path / "bad"), "--init-image", str(broken), *FAST])
    assert code == 1 and "cannot read init image" in capsys.readouterr().err


def test_interrupted_run_resumes_to_the_same_picture(clip, tmp_path, monkeypatch):
    import os
    import signal

    from text2mesh.errors import Interrupted
    from text2mesh.imaging import ImagineProblem

    cfg = small_config("pixels", iters=6)
    straight = imagine("a red image", cfg, tmp_path / "straight", clip=clip)
    loss = ImagineProblem.loss

    def interrupting_loss(self, step, generator):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return loss(self, step, generator)

    monkeypatch.setattr(ImagineProblem, "loss", interrupting_loss)
    with pytest.raises(Interrupted, match="--resume"):
        imagine("a red image", cfg, tmp_path / "stopped", clip=clip)
    monkeypatch.setattr(ImagineProblem, "loss", loss)
    assert not (tmp_path / "stopped" / "image.png").exists()
    resumed = imagine(None, output_dir=tmp_path / "stopped", resume=True, clip=clip)
    assert len(resumed.losses) == 6
    assert torch.allclose(resumed.image, straight.image, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this machine")
@pytest.mark.parametrize("generator", ["field", "pixels", "strokes"])
def test_imagine_runs_on_cuda(generator):
    cfg = small_config(generator, iters=3)
    cfg.optim.device = "cuda"
    result = imagine("a red image", cfg, clip=random_vit(0))
    assert result.image.device.type == "cpu" and torch.isfinite(result.image).all()
    assert next(result.canvas.parameters()).device.type == "cpu"


def test_missing_init_image_is_one_line_and_leaves_no_folder(capsys, tmp_path):
    out = tmp_path / "pic"
    with pytest.raises(SystemExit) as exc:
        main(["imagine", "a red image", "-o", str(out), "--init-image", str(tmp_path / "nope.png"), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code != 0 and "init image not found" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
