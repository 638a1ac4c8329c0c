"""CLIP-guided diffusion: guided-diffusion checkpoints mapped onto diffusers, model loading and its
one-line errors, the sampler's guidance, and the tiny models steering colours offline."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from clip_helpers import tiny_clip_is_shipped
from PIL import Image
from stylize_helpers import run_cli

pytest.importorskip("diffusers", reason="the diffusion generator uses diffusers' UNet2DModel and DDIMScheduler")
from diffusers import DDIMScheduler, UNet2DModel

from text2mesh.config import load_config
from text2mesh.errors import ConfigError
from text2mesh.generators.diffusion import (
    DiffusionModel,
    Guidance,
    load_diffusion,
    sample,
    tiny_diffusion_path,
)
from text2mesh.generators.guided import load_guided, parse_flags, scheduler_config
from text2mesh.imaging import imagine, load_image_run, vary

pytestmark = pytest.mark.usefixtures("one_thread")

needs_tiny_models = pytest.mark.skipif(
    not tiny_clip_is_shipped() or not (tiny_diffusion_path() / "config.json").is_file(),
    reason="the shipped tiny CLIP and tiny diffusion model (text2mesh/assets) are not there; run "
           "scripts/train_tiny_clip.py and scripts/train_tiny_diffusion.py",
)

SMALL_FLAGS = "--image_size 32 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2,2 --attention_resolutions 16,8"


def guided_reference(flags_text: str):
    """A small random-weight guided-diffusion UNetModel, built by guided-diffusion's own code."""
    script_util = pytest.importorskip("guided_diffusion.script_util",
                                      reason="guided-diffusion-sdk is the reference (in the dev extra)")
    flags = parse_flags(flags_text)
    names = ("image_size", "num_channels", "num_res_blocks", "channel_mult", "learn_sigma", "attention_resolutions",
             "num_heads", "num_head_channels", "use_scale_shift_norm", "resblock_updown", "use_new_attention_order")
    torch.manual_seed(0)
    model = script_util.create_model(**{name: flags[name] for name in names}).eval()
    with torch.no_grad():  # away from the zero-initialized output layers, so every weight matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("extra", [
    "--learn_sigma True --resblock_updown True --use_scale_shift_norm True --num_head_channels 16",
    "--resblock_updown False --use_scale_shift_norm False --num_heads 1 --use_new_attention_order True",
])
def test_a_guided_diffusion_checkpoint_predicts_as_guided_diffusion_does(tmp_path, extra):
    flags = f"{SMALL_FLAGS} {extra}"
    reference = guided_reference(flags)
    torch.save(reference.state_dict(), tmp_path / "model.pt")
    ours, _ = load_guided(tmp_path / "model.pt", flags)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10, 700])
    with torch.no_grad():
        expected, got = reference(x, t), ours(x, t).sample
    assert expected.std() > 0.1  # a prediction, not a constant
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)  # float32 reorderings only


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_a_guided_diffusion_noise_schedule_is_the_schedulers(schedule):
    gaussian_diffusion = pytest.importorskip("guided_diffusion.gaussian_diffusion", reason="guided-diffusion-sdk")
    expected = gaussian_diffusion.get_named_beta_schedule(schedule, 1000)
    config = scheduler_config(parse_flags(f"{SMALL_FLAGS} --noise_schedule {schedule}"))
    np.testing.assert_allclose(DDIMScheduler.from_config(config).betas.double().numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("flags, message", [
    ("--image_size 512 --num_channels 64", "cannot be mapped onto a diffusers UNet2DModel"),
    (f"{SMALL_FLAGS} --class_cond True", "class-conditional"),
    (f"{SMALL_FLAGS} --num_heads 4", "no --num_head_channels"),
    ("--image_size 32 oops", "--name value pairs"),
])
def test_guided_diffusion_models_that_do_not_map_are_one_line(tmp_path, flags, message):
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match=message) as info:
        load_guided(tmp_path / "model.pt", flags)
    assert "\n" not in str(info.value)


def small_unet(seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=16, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))


@pytest.fixture(scope="module")
def unet_folder(tmp_path_factory) -> Path:
    """A small random-weight UNet2DModel saved as a diffusers folder (no scheduler config: DDPM's)."""
    folder = tmp_path_factory.mktemp("models") / "unet"
    small_unet().save_pretrained(folder)
    return folder


def red_score(picture, step):
    """A stand-in for CLIP: lower when the picture [1, 3, H, W] is redder."""
    return -(picture[:, 0] - picture[:, 1:].mean(dim=1)).mean(), {}


def test_guidance_pushes_the_sample_down_its_loss():
    unet = small_unet()
    with torch.no_grad():  # a model that sees no noise: x0 is x_t rescaled, so only the guidance moves colours
        unet.conv_out.weight.zero_()
        unet.conv_out.bias.zero_()
    model = DiffusionModel(unet.eval().requires_grad_(False), {"clip_sample": False}, "zero-noise model")
    run = lambda scale: list(sample(model, Guidance(red_score, scale), steps=8, generator=torch.Generator().manual_seed(0)))
    plain, guided = run(0.0), run(0.05)
    redness = lambda steps: -float(red_score((steps[-1].sample.clamp(-1, 1) + 1) / 2, 0)[0])
    assert redness(guided) > redness(plain) + 0.2, (redness(plain), redness(guided))
    assert guided[-1].loss < guided[0].loss


def tiny_config(**imagine_settings):
    settings = {"generator": "diffusion", "diffusion": "text2mesh-tiny-diffusion", "size": [32, 32], "steps": 20,
                "n_cutouts": 8, "gif_frames": 5, **imagine_settings}
    return load_config(overrides={"guidance": {"clip_model": "text2mesh-tiny"}, "imagine": settings,
                                  "optim": {"seed": 2}})


def mean_colour(image):
    return image.mean(dim=(1, 2))


@pytest.fixture(scope="module")
def tiny_clip():
    from text2mesh.guidance.clip import load_clip

    return load_clip("text2mesh-tiny")


@needs_tiny_models
@pytest.mark.parametrize("prompt, channel", [("a red image", 0), ("a green image", 1)])
def test_the_tiny_models_paint_the_prompts_colour_where_the_unguided_sample_does_not(tiny_clip, prompt, channel):
    guided = imagine(prompt, tiny_config(), clip=tiny_clip).image
    plain = imagine(prompt, tiny_config(guidance_scale=0.0), clip=tiny_clip).image
    others = [c for c in range(3) if c != channel]
    lead = lambda image: float((mean_colour(image)[channel] - mean_colour(image)[others]).min())
    assert lead(guided) >= 0.15 > lead(plain), (lead(guided), lead(plain))
    assert (guided.reshape(3, -1).std(dim=1) > 0.05).all(), "the picture is one flat colour"


@needs_tiny_models
def test_init_image_with_skip_steps_starts_near_it(tiny_clip, tmp_path):
    from text2mesh.guidance.synthetic import make_batch

    picture = make_batch(1, 32, torch.Generator().manual_seed(5), plain_fraction=1.0).images[0]
    Image.fromarray((picture.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(tmp_path / "init.png")
    start = lambda skip: imagine("a red image", tiny_config(guidance_scale=0.0, skip_steps=skip),
                                 init_image=tmp_path / "init.png", clip=tiny_clip)
    late, early = start(16), start(2)
    distance = lambda result: float((result.image - picture).abs().mean())
    assert len(late.losses) == 4 and distance(late) < 0.06 and distance(early) > 2 * distance(late), (
        distance(late), distance(early))


@needs_tiny_models
def test_the_same_seed_gives_the_same_picture(tiny_clip):
    first = imagine("a blue image", tiny_config(steps=6), clip=tiny_clip)
    again = imagine("a blue image", tiny_config(steps=6), clip=tiny_clip)
    assert torch.equal(first.image, again.image)
    other = tiny_config(steps=6)
    other.optim.seed = 4
    assert (imagine("a blue image", other, clip=tiny_clip).image - first.image).abs().mean() > 0.02


FAST = ["--clip-model", "text2mesh-tiny", "--steps", "4", "--size", "16", "16", "--quiet",
        "--set", "imagine.n_cutouts=2", "--set", "imagine.gif_frames=2"]


def test_cli_samples_a_diffusers_folder_and_writes_the_run_folder(unet_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["imagine", "a red image", "--generator", "diffusion", "--diffusion", str(unet_folder),
                         "-o", str(out), *FAST], capsys)
    assert code == 0, err
    for name in ("image.png", "progress.gif", "config.yaml", "loss.csv"):
        assert (out / name).is_file(), name
    with Image.open(out / "progress.gif") as gif:
        assert gif.size == (16, 16) and gif.n_frames == 2
    assert len((out / "loss.csv").read_text().splitlines()) == 1 + 4  # a header and one row per step
    assert load_image_run(out).image.shape == (3, 16, 16)
    code, _, err = run_cli(["imagine", "--resume", str(out)], capsys)
    assert code == 1 and "keeps no state to resume" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli(["export", str(out)], capsys)  # the mesh commands: a picture, not a mesh
    assert code == 1 and "has no checkpoint.pt" in err and len(err.strip().splitlines()) == 1, err


def test_cli_variations_and_vary_of_a_diffusion_run(unet_folder, tmp_path, capsys):
    out = tmp_path / "vars"
    code, _, err = run_cli(["imagine", "a red image", "--generator", "diffusion", "--diffusion", str(unet_folder),
                         "--variations", "2", "--seed", "5", "-o", str(out), *FAST], capsys)
    assert code == 0, err
    assert (out / "contact_sheet.png").is_file() and (out / "seed-6" / "image.png").is_file()
    parent = load_image_run(out / "seed-5")
    same = vary(out / "seed-5", strength=0.0, n=1, output_dir=tmp_path / "same")
    assert torch.allclose(same[0].image, parent.image, atol=1 / 255)
    moved = vary(out / "seed-5", strength=0.5, n=2, output_dir=tmp_path / "moved")
    assert all(len(m.losses) == 2 for m in moved)  # half of the parent's 4 steps sampled again
    assert (moved[0].image - moved[1].image).abs().mean() > 0.01
    assert (tmp_path / "moved" / "contact_sheet.png").is_file()


@pytest.mark.parametrize("spec, message", [
    ("{missing}", "not found"),
    ("{not_a_model}", "is not a diffusers UNet2DModel folder"),
    ("{broken}", "cannot load diffusion model"),
    ("{missing_pt}", "diffusion checkpoint not found"),
    ("{unknown_pt}", "not a known guided-diffusion checkpoint"),
    ("nobody/no-such-diffusion-model", "not cached and HF_HUB_OFFLINE is set"),
])
def test_cli_a_missing_or_unreadable_model_is_one_line_within_seconds(tmp_path, capsys, monkeypatch, spec, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    (tmp_path / "mine.pt").write_bytes(b"not a checkpoint")
    spec = spec.format(missing=tmp_path / "nowhere", not_a_model=tmp_path / "empty", broken=tmp_path / "broken",
                       missing_pt=tmp_path / "nowhere.pt", unknown_pt=tmp_path / "mine.pt")
    start = time.monotonic()
    code, _, err = run_cli(["imagine", "a red image", "--generator", "diffusion", "--diffusion", spec,
                         "-o", str(tmp_path / "run"), *FAST], capsys)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert time.monotonic() - start < 10 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    ([], "--generator diffusion needs a model"),
    (["--diffusion", "text2mesh-tiny-diffusion", "--skip-steps", "4"], "must be below --steps"),
    (["--diffusion", "text2mesh-tiny-diffusion", "--skip-steps", "2"], "--skip-steps starts from a noised --init-image"),
    (["--diffusion", "{unet}", "--steps", "2000"], "more than the 1000 timesteps"),
])
def test_cli_bad_diffusion_settings_are_one_line(unet_folder, tmp_path, capsys, argv, message):
    argv = [a.format(unet=unet_folder) for a in argv]
    code, _, err = run_cli(["imagine", "a red image", "--generator", "diffusion", "-o", str(tmp_path / "run"), *FAST,
                         *argv], capsys)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


def test_a_hub_model_is_read_from_its_root_or_its_unet_folder_as_the_hub_holds_it(monkeypatch, unet_folder):
    """A root-level UNet (google/ddpm-*) and a pipeline's unet/ alike, cached or not."""
    import huggingface_hub

    from text2mesh.generators import diffusion
    from text2mesh.guidance import clip as hub

    cached: dict[str, str] = {}
    monkeypatch.setattr(hub, "hf_cached_file", lambda repo, name, cache_dir: cached.get(name))
    monkeypatch.setattr(huggingface_hub, "file_exists", lambda repo, name: name == "config.json")
    assert diffusion._hub_subfolder("google/ddpm-celebahq-256") is None  # not cached: the hub says root
    monkeypatch.setattr(huggingface_hub, "file_exists", lambda repo, name: name == "unet/config.json")
    assert diffusion._hub_subfolder("someone/a-pipeline") == "unet"

    def offline(repo, name):
        raise AssertionError("a cached model is found without asking the hub")

    monkeypatch.setattr(huggingface_hub, "file_exists", offline)
    cached["unet/config.json"] = str(unet_folder / "config.json")
    assert diffusion._hub_subfolder("someone/a-pipeline") == "unet"
    cached["config.json"] = str(unet_folder / "config.json")
    assert diffusion._hub_subfolder("google/ddpm-celebahq-256") is None


def test_a_model_loads_once_per_process(unet_folder):
    first = load_diffusion(str(unet_folder))
    assert isinstance(first, DiffusionModel) and load_diffusion(str(unet_folder)).unet is first.unet
