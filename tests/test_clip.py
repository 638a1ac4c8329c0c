"""CLIP loading (cache, local file, offline failure) and the ClipModel encoders."""

from __future__ import annotations

import json
import time

import pytest
import torch

from text2mesh.errors import ClipError
from text2mesh.guidance import clip as clip_module
from text2mesh.guidance.clip import (
    TINY_COLOUR,
    TINY_MODEL,
    TINY_SHAPE,
    ClipEnsemble,
    import_open_clip,
    load_clip,
    preprocess_images,
    random_clip,
)

FAKE_MODEL = "t2m-test-tiny"


@pytest.fixture(scope="module")
def tiny_random():
    return random_clip(TINY_COLOUR, seed=1)


@pytest.fixture(scope="module")
def tiny_state_file(tmp_path_factory, tiny_random):
    """A checkpoint of the tiny architecture (random weights), as a user might pass one."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(tiny_random.model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def fake_model_name(tmp_path_factory):
    """Register a copy of the tiny architecture under another name, as any open_clip config."""
    folder = tmp_path_factory.mktemp("configs")
    config = json.loads((clip_module.ASSETS_DIR / f"{TINY_COLOUR}.json").read_text())
    (folder / f"{FAKE_MODEL}.json").write_text(json.dumps(config))
    import_open_clip().add_model_config(folder)
    return FAKE_MODEL


def _register_tag(monkeypatch, name: str, tag: str, cfg: dict) -> None:
    registry = import_open_clip().pretrained._PRETRAINED
    monkeypatch.setitem(registry, name, {tag: cfg})


def _fill_hf_cache(cache_dir, repo_id: str, filename: str, source) -> None:
    """Lay a file out the way huggingface_hub's cache stores a download."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(source.read_bytes())


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_encoders_give_unit_vectors_of_the_model_width(tiny_random):
    texts = tiny_random.encode_text(["a red object", "stripes", ""])
    images = tiny_random.encode_images(torch.rand(2, 3, 50, 70))
    assert texts.shape == (3, tiny_random.embed_dim) and images.shape == (2, tiny_random.embed_dim)
    assert torch.allclose(texts.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(images.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_input_size_and_normalization_come_from_the_model(tiny_random):
    config = json.loads((clip_module.ASSETS_DIR / f"{TINY_COLOUR}.json").read_text())
    size = config["vision_cfg"]["image_size"]
    assert tiny_random.image_size == (size, size)
    grey = torch.full((1, 3, 200, 300), 0.5)
    pixels = tiny_random.preprocess(grey)
    assert pixels.shape == (1, 3, size, size)
    expected = (0.5 - torch.tensor(tiny_random.mean)) / torch.tensor(tiny_random.std)
    assert torch.allclose(pixels[0, :, size // 2, size // 2], expected, atol=1e-4)


def test_resizing_keeps_the_picture(tiny_random):
    """A smooth picture at 7x the input size embeds like the same picture at the input size."""
    h, w = tiny_random.image_size
    coarse = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    small = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    big = torch.nn.functional.interpolate(coarse, size=(7 * h, 7 * w), mode="bilinear", align_corners=False)
    assert torch.allclose(tiny_random.preprocess(big), tiny_random.preprocess(small), atol=0.05)
    similarity = (tiny_random.encode_images(big) * tiny_random.encode_images(small)).sum()
    assert similarity > 0.99


def test_non_square_images_are_center_cropped():
    left_half_red = torch.zeros(1, 3, 40, 120)
    left_half_red[:, 0, :, :60] = 1.0
    out = preprocess_images(left_half_red, (20, 20), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert out.shape == (1, 3, 20, 20)
    assert torch.allclose(out[0, 0, :, :8], torch.ones(20, 8), atol=1e-3)  # the crop spans x 40..80
    assert torch.allclose(out[0, 0, :, 12:], torch.zeros(20, 8), atol=1e-3)


def test_encode_images_is_differentiable_and_weights_frozen(tiny_random):
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    target = tiny_random.encode_text(["a blue object"])
    (tiny_random.encode_images(images) @ target.T).sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert not tiny_random.model.training
    assert not any(p.requires_grad for p in tiny_random.model.parameters())
    assert all(p.grad is None for p in tiny_random.model.parameters())


def test_tokenize_pads_to_the_context_length(tiny_random):
    tokens = tiny_random.tokenize(["a red object", "word " * 100])
    assert tokens.shape == (2, tiny_random.context_length) and tokens.dtype == torch.int64
    assert tiny_random.n_tokens("a red object") == 5
    assert tiny_random.n_tokens("word " * 100) > tiny_random.context_length


def test_random_clip_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = random_clip(TINY_COLOUR, seed=5)
    after = torch.rand(1)
    b = random_clip(TINY_COLOUR, seed=5)
    c = random_clip(TINY_COLOUR, seed=6)
    assert torch.equal(before, after)
    assert _same_weights(a.model, b.model) and not _same_weights(a.model, c.model)


def test_local_checkpoint_file_loads(tiny_state_file, tiny_random):
    loaded = load_clip(TINY_COLOUR, checkpoint=tiny_state_file)
    assert _same_weights(loaded.model, tiny_random.model)
    assert loaded.source == str(tiny_state_file)
    assert not loaded.model.training and not any(p.requires_grad for p in loaded.model.parameters())


def test_pretrained_given_as_a_file_loads(fake_model_name, tiny_state_file, tiny_random):
    loaded = load_clip(fake_model_name, pretrained=str(tiny_state_file))
    assert _same_weights(loaded.model, tiny_random.model)


def test_name_and_tag_load_from_the_hf_cache_without_network(
    monkeypatch, tmp_path, fake_model_name, tiny_state_file, tiny_random
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    cfg = {"hf_hub": "t2m-test/fake-tiny/", "mean": mean, "std": std, "quick_gelu": True}
    _register_tag(monkeypatch, fake_model_name, "fake", cfg)
    _fill_hf_cache(tmp_path, "t2m-test/fake-tiny", "open_clip_pytorch_model.bin", tiny_state_file)
    loaded = load_clip(fake_model_name, pretrained="fake", cache_dir=str(tmp_path))
    assert _same_weights(loaded.model, tiny_random.model)
    assert loaded.mean == mean and loaded.std == std  # the tag's normalization, read from the model
    quick_gelu = import_open_clip().transformer.QuickGELU
    assert any(isinstance(m, quick_gelu) for m in loaded.model.modules())  # the activation the tag was trained with


def test_name_and_tag_load_from_the_url_cache(monkeypatch, tmp_path, fake_model_name, tiny_state_file, tiny_random):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _register_tag(monkeypatch, fake_model_name, "web", {"url": "https://example.invalid/models/tiny-web.pt"})
    (tmp_path / "tiny-web.pt").write_bytes(tiny_state_file.read_bytes())
    loaded = load_clip(fake_model_name, pretrained="web", cache_dir=str(tmp_path))
    assert _same_weights(loaded.model, tiny_random.model)


def test_bad_checkpoint_files_raise_clip_error(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(ClipError, match="garbage.pt"):
        load_clip(TINY_COLOUR, checkpoint=garbage)
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ClipError, match="wrong.pt"):
        load_clip(TINY_COLOUR, checkpoint=wrong)
    with pytest.raises(ClipError, match="not found"):
        load_clip(TINY_COLOUR, checkpoint=tmp_path / "missing.pt")


def test_unknown_model_or_tag_raise_clip_error():
    with pytest.raises(ClipError, match="unknown CLIP model"):
        load_clip("ViT-Nonexistent-1", pretrained="openai")
    with pytest.raises(ClipError, match="unknown pretrained tag"):
        load_clip("ViT-B-32", pretrained="no-such-tag")


def _assert_fast_one_line_offline_error(**kwargs) -> str:
    start = time.monotonic()
    with pytest.raises(ClipError) as info:
        load_clip("ViT-B-32", pretrained="openai", **kwargs)
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert elapsed < 10, f"offline failure took {elapsed:.1f}s"
    assert "\n" not in message
    for needle in ("ViT-B-32", "openai", "--clip-checkpoint", "network"):
        assert needle in message
    return message


def test_offline_without_weights_fails_fast_with_hf_hub_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE" in _assert_fast_one_line_offline_error(cache_dir=str(tmp_path))


def test_offline_without_weights_fails_fast_when_the_hub_is_unreachable(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(clip_module, "HF_HOST", "huggingface.invalid")  # never resolves (RFC 2606)
    assert "cannot be reached" in _assert_fast_one_line_offline_error(cache_dir=str(tmp_path))


def test_fetch_weights_offline_answers_in_one_line(monkeypatch, tmp_path, capsys):
    from text2mesh.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(SystemExit) as exit_info:
        main(["fetch-weights"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and "\n" not in err and "ViT-B-32" in err and "openai" in err


def test_fetch_weights_reports_a_model_that_is_ready(capsys):
    from text2mesh.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["fetch-weights", "--clip-model", TINY_MODEL])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"{TINY_MODEL}: ready")


def test_ensemble_similarity_is_the_mean_of_its_members_and_carries_their_gradients(tiny_random):
    other = random_clip(TINY_SHAPE, seed=2)
    ensemble = ClipEnsemble([tiny_random, other], "pair", weights=[0.25, 0.75])
    images = torch.rand(3, 3, 40, 40, requires_grad=True)
    texts = ["a red object", "a spiky blue object"]
    joint = ensemble.encode_images(images) @ ensemble.encode_text(texts).T
    parts = [m.encode_images(images) @ m.encode_text(texts).T for m in (tiny_random, other)]
    assert torch.allclose(joint, 0.25 * parts[0] + 0.75 * parts[1], atol=1e-5)
    assert torch.allclose(ensemble.encode_text(texts).norm(dim=-1), torch.ones(2), atol=1e-5)
    joint.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert ensemble.image_size == max(tiny_random.image_size, other.image_size)
    with pytest.raises(ValueError, match="summing to 1"):
        ClipEnsemble([tiny_random, other], "bad", weights=[0.5, 0.6])


def test_the_offline_guide_is_the_ensemble_of_the_shipped_colour_and_shape_models(tmp_path):
    tiny = load_clip(TINY_MODEL)
    assert [m.name for m in tiny.members] == [TINY_COLOUR, TINY_SHAPE]
    assert all(m.source == str(clip_module.tiny_checkpoint_path(m.name)) for m in tiny.members)
    assert tiny.members[0].tokenizer is tiny.members[1].tokenizer  # one BPE table for towers set alike
    assert torch.equal(tiny.members[0].tokenize(["a red object"]), import_open_clip().tokenize(["a red object"], 24))
    with pytest.raises(ClipError, match="ensemble of text2mesh-tiny-colour and text2mesh-tiny-shape"):
        load_clip(TINY_MODEL, checkpoint=tmp_path / "any.pt")
