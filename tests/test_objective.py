import logging

import numpy as np
import pytest
import torch
from clip_helpers import random_vit
from PIL import Image

from text2mesh.errors import ConfigError, ImageError
from text2mesh.guidance.objective import Objective, Term
from text2mesh.targets import Target, build_targets, split_weight


@pytest.fixture(scope="module")
def clip():
    return random_vit(0)


def test_targets_are_one_weighted_list(tmp_path):
    targets = build_targets("a red vase", ["stripes:0.5", "ratio 3:two"], [f"{tmp_path}/a.png:2"], ["blue"])
    assert targets == [
        Target("text", "a red vase", 1.0),
        Target("text", "stripes", 0.5),
        Target("text", "ratio 3:two", 1.0),
        Target("image", f"{tmp_path}/a.png", 2.0),
        Target("text", "blue", -1.0),
    ]
    assert split_weight("x:-0.25") == ("x", -0.25)


def test_pipes_split_one_prompt_into_weighted_targets():
    from text2mesh.config import Config
    from text2mesh.targets import check_targets, main_prompt, with_prompts

    cfg = with_prompts(Config(), "a castle:1 | fog:0.5 | blurry:-1 | ratio 3:2 |a moat ")
    assert check_targets(cfg) == [
        Target("text", "a castle", 1.0),
        Target("text", "fog", 0.5),
        Target("text", "blurry", -1.0),
        Target("text", "ratio 3", 2.0),
        Target("text", "a moat", 1.0),
    ]
    assert main_prompt(cfg) == "a castle"
    assert check_targets(with_prompts(Config(), "a red image:0.5"))[0] == Target("text", "a red image:0.5", 1.0)
    with pytest.raises(ConfigError, match="no prompt to aim for"):
        check_targets(with_prompts(Config(), "blurry:-1 | fog:-0.5"))
    with pytest.raises(ConfigError, match="prompt is empty"):
        check_targets(with_prompts(Config(), "a castle | | fog"))


@pytest.mark.parametrize("prompt", ["", "   "])
def test_empty_prompt_is_a_clear_error(prompt):
    with pytest.raises(ConfigError, match="prompt is empty"):
        build_targets(prompt)


def test_only_negatives_is_an_error():
    with pytest.raises(ConfigError, match="no prompt"):
        build_targets(None, negatives=["blue"])


def test_loss_is_minus_weighted_cosine(clip):
    targets = [Target("text", "red", 1.0), Target("text", "green", 0.5), Target("text", "blue", -1.0)]
    objective = Objective(clip, targets)
    images = torch.rand(6, 3, 48, 48)  # 2 augmentations x 3 views
    loss, parts = objective([Term("full", images, n_views=3, weight=2.0)])
    with torch.no_grad():
        emb = clip.encode_images(images).reshape(2, 3, -1).mean(1)
        emb = emb / emb.norm(dim=-1, keepdim=True)
        text = clip.encode_text(["red", "green", "blue"])
        cos = (emb @ text.T).sum(0)  # one -cos per augmentation, as the reference adds them
    expected = -(cos[0] + 0.5 * cos[1] - cos[2])
    assert loss.item() == pytest.approx(2.0 * expected.item(), abs=1e-5)
    assert parts["full"] == pytest.approx(expected.item(), abs=1e-5)
    mean, _ = objective([Term("full", images, n_views=3, weight=2.0, reduce="mean")])
    assert mean.item() == pytest.approx(expected.item(), abs=1e-5)  # 2 augmentations: half the sum, times 2


def test_positive_target_similarity_rises_negative_falls(clip):
    objective = Objective(clip, build_targets("a red cube", negatives=["a blue sphere"]))
    pixels = torch.full((4, 3, 48, 48), 0.5, requires_grad=True)
    opt = torch.optim.Adam([pixels], lr=0.02)

    def sims():
        with torch.no_grad():
            return objective.similarity(clip.encode_images(pixels.clamp(0, 1)), n_views=4)

    before = sims()
    for _ in range(15):
        opt.zero_grad()
        loss, _ = objective([Term("full", pixels.clamp(0, 1), n_views=4)])
        loss.backward()
        opt.step()
    after = sims()
    assert after[0, 0] > before[0, 0] + 0.05
    assert after[0, 1] < before[0, 1] - 0.05


def test_batched_clip_pass_equals_per_augmentation_passes(clip):
    targets = build_targets("stripes", negatives=["dots"])
    batched = Objective(clip, targets)
    per_aug = Objective(clip, targets, chunk_size=2)
    terms = [Term("full", torch.rand(2, 3, 48, 48), 2), Term("local", torch.rand(8, 3, 48, 48), 2, 0.5),
             Term("geometry", torch.rand(8, 3, 48, 48), 2, 0.25)]
    a, parts_a = batched(terms)
    b, parts_b = per_aug(terms)
    assert a.item() == pytest.approx(b.item(), abs=1e-5)
    assert parts_a == pytest.approx(parts_b, abs=1e-5)


def test_all_images_go_through_clip_in_one_call(clip, monkeypatch):
    objective = Objective(clip, build_targets("stripes"))
    calls = []
    original = clip.encode_images
    monkeypatch.setattr(clip, "encode_images", lambda x: calls.append(x.shape[0]) or original(x))
    objective([Term("full", torch.rand(3, 3, 48, 48), 3), Term("local", torch.rand(12, 3, 48, 48), 3)])
    assert calls == [15]


def test_per_view_averaging_differs_from_view_averaging(clip):
    images = torch.rand(4, 3, 48, 48)
    targets = build_targets("stripes")
    a, _ = Objective(clip, targets, averaging="views")([Term("t", images, 4)])
    b, _ = Objective(clip, targets, averaging="none")([Term("t", images, 4)])
    with torch.no_grad():
        emb = clip.encode_images(images)
    # "views": cosine of the mean embedding = mean cosine / |mean embedding| (which is < 1)
    assert a.item() == pytest.approx(b.item() / emb.mean(0).norm().item(), abs=1e-5)
    assert abs(a.item()) > abs(b.item())


def test_long_prompt_is_truncated_with_a_warning(clip, caplog):
    with caplog.at_level(logging.WARNING):
        Objective(clip, build_targets("a vase " * 40))
    assert "truncated" in caplog.text


def test_image_prompt_is_a_target(clip, tmp_path):
    path = tmp_path / "red.png"
    Image.fromarray(np.full((30, 40, 3), (255, 0, 0), np.uint8)).save(path)
    objective = Objective(clip, build_targets(None, image_prompts=[f"{path}:2"]))
    red = torch.zeros(1, 3, 48, 48)
    red[:, 0] = 1
    sim = objective.similarity(clip.encode_images(red), 1)
    assert sim.item() == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ImageError, match="not found"):
        Objective(clip, build_targets(None, image_prompts=[str(tmp_path / "missing.png")]))
