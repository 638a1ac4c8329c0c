"""The shipped tiny CLIP: loads like real weights and understands colours and patterns."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from text2mesh.guidance.clip import (
    ENSEMBLES,
    TINY_COLOUR,
    TINY_JUDGE,
    TINY_MODEL,
    TINY_SHAPE,
    import_open_clip,
    load_clip,
    tiny_checkpoint_path,
)
from text2mesh.guidance.synthetic import (
    COLOUR_NAMES,
    MOTTLED,
    PATTERN_ADJECTIVES,
    PATTERN_NOUNS,
    PATTERNS,
    _colour_values,
    _pattern_mask,
    caption_matches,
    colour_prompts,
    make_batch,
    pattern_prompts,
    surface_prompts,
)
from text2mesh.guidance.synthetic_shapes import GREY, SURFACES, bank_batch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_tiny_clip.py"
HELD_OUT_SEED = 987_654  # training draws from seed 0's stream; evaluation in the script uses 10_000
SURFACE_BAR = 0.55  # the shipped ensemble and judge score 0.6-0.65: see the training script's figures



def _accuracy(clip, images: torch.Tensor, prompts: list[str], labels: torch.Tensor) -> float:
    with torch.no_grad():
        scores = clip.encode_images(images) @ clip.encode_text(prompts).T
    return (scores.argmax(1) == labels).float().mean().item()


def _balanced_plain_batch(per_class: int, seed: int, **kwargs):
    """Plain objects, ``per_class`` of every colour (the generator draws colours at random)."""
    batch = make_batch(per_class * len(COLOUR_NAMES) * 3, 64, torch.Generator().manual_seed(seed),
                       plain_fraction=1.0, **kwargs)
    keep = torch.cat([torch.nonzero(batch.colour == c)[:per_class, 0] for c in range(len(COLOUR_NAMES))])
    assert len(keep) == per_class * len(COLOUR_NAMES)
    return batch.images[keep], batch.colour[keep]


@pytest.mark.parametrize("member", list(ENSEMBLES[TINY_MODEL]))
def test_shipped_models_load_through_the_checkpoint_path(tiny, member):
    model = next(m for m in tiny.members if m.name == member)
    path = tiny_checkpoint_path(member)
    assert Path(model.source) == path and path.stat().st_size < 10 * 2**20
    config = json.loads((path.parent / f"{member}.json").read_text())
    size = config["vision_cfg"]["image_size"]
    assert model.image_size == (size, size) and model.context_length == config["text_cfg"]["context_length"]
    again = load_clip(member, pretrained="openai", checkpoint=path)
    assert all(torch.equal(a, b) for a, b in zip(model.model.state_dict().values(), again.model.state_dict().values()))


def test_zero_shot_colour_accuracy_on_held_out_images(tiny):
    images, labels = _balanced_plain_batch(per_class=20, seed=HELD_OUT_SEED)
    accuracy = _accuracy(tiny, images, colour_prompts(), labels)
    assert accuracy >= 0.9, f"colour accuracy {accuracy:.3f}"


def test_zero_shot_colour_accuracy_on_shaded_renders(tiny):
    """Lit 3D-looking objects on white, the look of a rendered mesh."""
    images, labels = _balanced_plain_batch(per_class=10, seed=HELD_OUT_SEED + 1, white_background=1.0, shaded=1.0)
    accuracy = _accuracy(tiny, images, colour_prompts(), labels)
    assert accuracy >= 0.85, f"colour accuracy on shaded objects {accuracy:.3f}"


def test_zero_shot_pattern_accuracy_on_held_out_images(tiny):
    """Four patterns (chance 25%); telling plain from patterned is the easier half of it."""
    batch = make_batch(240, 64, torch.Generator().manual_seed(HELD_OUT_SEED + 2), plain_fraction=0.25)
    with torch.no_grad():
        predicted = (tiny.encode_images(batch.images) @ tiny.encode_text(pattern_prompts()).T).argmax(1)
    accuracy = (predicted == batch.pattern).float().mean().item()
    plain_vs_patterned = ((predicted == 0) == (batch.pattern == 0)).float().mean().item()
    assert accuracy >= 0.55, f"pattern accuracy {accuracy:.3f}"
    assert plain_vs_patterned >= 0.85, f"plain-vs-patterned accuracy {plain_vs_patterned:.3f}"


@pytest.fixture(scope="module")
def held_out_surfaces():
    """The training script's held-out surface renders (other draws), rendered once for both models:
    the script module, the bank and the bank as a captioned batch."""
    script = _load_script()
    bank, _ = script.surface_eval_bank(HELD_OUT_SEED)
    rendered = bank_batch(bank, torch.arange(len(bank.surface)), bank.images.float() / 255, torch.Generator())
    return script, bank, rendered


@pytest.mark.parametrize("name", [TINY_MODEL, TINY_JUDGE])
def test_zero_shot_surface_accuracy_on_meshes_never_seen_in_training(name, held_out_surfaces):
    """Five surface words (chance 20%) on renders of the shipped vase, dog and human and a torus,
    every word on every mesh (the training script's held-out set, other draws), by the guide and
    by the judge: grey as the geometry pass draws them and coloured; every word is told apart,
    not just the easy ones."""
    script, bank, rendered = held_out_surfaces
    hits = script.zero_shot_hits(load_clip(name), rendered, surface_prompts(), rendered.surface).float()
    per_word = [round(float(hits[bank.surface == i].mean()), 3) for i in range(len(SURFACES))]
    assert hits.mean() >= SURFACE_BAR, f"surface accuracy {hits.mean():.3f}; per word {per_word}"
    assert hits[bank.colour == GREY].mean() >= SURFACE_BAR, f"on grey renders {hits[bank.colour == GREY].mean():.3f}"
    assert min(per_word) >= 0.25, f"per word {per_word}"


@pytest.mark.parametrize("channel, word", [(0, "red"), (1, "green"), (2, "blue")])
def test_colour_words_pull_grey_toward_their_colour(tiny, channel, word):
    """From a flat grey picture, the gradient of 'a <colour> object' raises that channel more than
    the other two on average (no detour through the opposite colour, as an untidy model takes)."""
    grey = torch.full((1, 3, 64, 64), 0.5, requires_grad=True)
    (tiny.encode_images(grey) @ tiny.encode_text([f"a {word} object"]).T).sum().backward()
    mean_grad = grey.grad.mean(dim=(0, 2, 3))
    others = [c for c in range(3) if c != channel]
    assert mean_grad[channel] > mean_grad[others].mean(), f"gradient {mean_grad.tolist()}"


def test_synthetic_data_are_seeded_and_captions_true_of_their_images():
    a = make_batch(24, 32, torch.Generator().manual_seed(3))
    b = make_batch(24, 32, torch.Generator().manual_seed(3))
    c = make_batch(24, 32, torch.Generator().manual_seed(4))
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.equal(a.images, c.images)
    assert caption_matches(a).diagonal().all()
    for caption, colour, pattern in zip(a.captions, a.cap_colour, a.cap_pattern):
        if colour >= 0:
            assert COLOUR_NAMES[colour] in caption
        if pattern > 0:
            words = PATTERN_NOUNS[PATTERNS[pattern]] + PATTERN_ADJECTIVES[PATTERNS[pattern]]
            assert any(word in caption for word in words), caption


def test_tinted_colours_stay_near_grey_leaning_to_their_colour_and_no_tint_draws_as_before():
    red, gray = COLOUR_NAMES.index("red"), COLOUR_NAMES.index("gray")
    index = torch.tensor([red] * 100 + [gray] * 100)
    plain = _colour_values(index, torch.Generator().manual_seed(1))
    tinted = _colour_values(index, torch.Generator().manual_seed(1), tint=1.0)
    spread = lambda rgb: rgb.max(1).values - rgb.min(1).values
    assert (spread(tinted[:100]) <= 0.5 * spread(plain[:100]) + 1e-6).all()
    assert (tinted[:100, 0] > tinted[:100, 1:].max(1).values).all(), "a red tint is still red"
    assert torch.equal(tinted[100:], plain[100:]), "grey is not tinted"
    a = make_batch(16, 16, torch.Generator().manual_seed(2))
    b = make_batch(16, 16, torch.Generator().manual_seed(2), tint=0.0)
    assert torch.equal(a.images, b.images), "tint 0 draws what the judge was trained on"


def test_blended_twins_are_plain_pictures_no_pattern_caption_is_true_of():
    """Each twin is its patterned picture in one flat colour, named by no colour word, so
    "blue and white stripes" is false of a uniform light blue or cyan."""
    n = 64
    plain_stream = make_batch(n, 32, torch.Generator().manual_seed(5), plain_fraction=0.0)
    batch = make_batch(n, 32, torch.Generator().manual_seed(5), plain_fraction=0.0, blends=0.5)
    assert torch.equal(batch.images[:n], plain_stream.images), "the first n are the batch without twins"
    twins = batch.images[n:]
    assert 16 <= len(twins) <= 48 and (batch.pattern[n:] == 0).all() and (batch.colour[n:] == -1).all()
    detail = lambda images: float((images[..., 1:] - images[..., :-1]).abs().mean())
    assert detail(twins) < 0.5 * detail(batch.images[:n]), "one flat colour where the pattern was"
    matches = caption_matches(batch)
    assert not matches[n:, :n][:, batch.cap_colour[:n] >= 0].any(), "no colour word is true of a twin"
    assert not matches[n:, :n][:, batch.cap_pattern[:n] > 0].any(), "no pattern word is true of a twin"
    assert matches.diagonal().all() and all(not any(c in t for c in COLOUR_NAMES) for t in batch.captions[n:])


def _orientation_coherence(masks: torch.Tensor) -> torch.Tensor:
    """[n] 1 - (smaller / larger eigenvalue) of each mask's gradient structure tensor: ~1 for
    parallel stripes, lower when the edges run every way. masks: [n,H,W]."""
    dy, dx = masks[:, 1:, :-1] - masks[:, :-1, :-1], masks[:, :-1, 1:] - masks[:, :-1, :-1]
    tensor = torch.stack([(dx * dx).sum((1, 2)), (dx * dy).sum((1, 2)), (dy * dy).sum((1, 2))], dim=1)
    a, b, c = tensor.unbind(1)
    root = torch.sqrt(((a - c) / 2) ** 2 + b**2)
    return 1 - ((a + c) / 2 - root) / ((a + c) / 2 + root).clamp(min=1e-9)


def test_mottled_pictures_are_blotches_without_a_direction_no_stripes_caption_is_true_of():
    """The fifth pattern, drawn only when asked for: blotches of both colours whose edges run
    every way (stripes' run one way), named by their own words and by no other pattern's."""
    assert not (make_batch(48, 32, torch.Generator().manual_seed(6), plain_fraction=0.0).pattern == MOTTLED).any()
    batch = make_batch(48, 32, torch.Generator().manual_seed(6), plain_fraction=0.0, mottled=1.0)
    assert (batch.pattern == MOTTLED).all()
    lin = torch.linspace(-1.5, 1.5, 64)
    v, u = torch.meshgrid(lin, lin, indexing="ij")
    n = 32
    grid = lambda t: t.expand(n, 64, 64)
    masks = {name: _pattern_mask(grid(u), grid(v), torch.ones(n, 1, 1), torch.full((n,), PATTERNS.index(name)), 64,
                                 torch.Generator().manual_seed(7)) for name in ("stripes", "mottled")}
    coverage = masks["mottled"].mean((1, 2))
    assert ((coverage > 0.15) & (coverage < 0.85)).all(), f"both colours show: {coverage.tolist()}"
    mottled, stripes = _orientation_coherence(masks["mottled"]), _orientation_coherence(masks["stripes"])
    assert stripes.median() > 0.85 and mottled.median() < 0.45 and mottled.max() < 0.7, (stripes, mottled)
    matches = caption_matches(batch)
    stripe_captions = batch.cap_pattern == PATTERNS.index("stripes")
    assert not matches[:, stripe_captions].any(), "no stripes caption is true of blotches"
    words = PATTERN_NOUNS["mottled"] + PATTERN_ADJECTIVES["mottled"]
    named = [t for t, p in zip(batch.captions, batch.cap_pattern) if p == MOTTLED]
    assert named and all(any(w in t for w in words) for t in named)


def _load_script():
    spec = importlib.util.spec_from_file_location("train_tiny_clip", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_script_is_deterministic_and_its_output_loads(tmp_path):
    script = _load_script()
    args = ["--steps", "2", "--batch", "8", "--eval-n", "11", "--warmup", "1", "--shape-batch", "4", "--bank-meshes", "3"]
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    scores = script.main(args + ["--out", str(first)])
    script.main(args + ["--out", str(second)])
    surfaces = {f"{key}{mesh}" for key in ("surface", "surface_close")
                for mesh in ("", "_grey", *(f"_{name}" for name in script.HELD_OUT_NAMES))}
    assert set(scores) == {"colour", "colour_shaded", "pattern", *surfaces}
    a, b = torch.load(first), torch.load(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_clip(TINY_COLOUR, checkpoint=first).image_size == load_clip(TINY_COLOUR).image_size


def test_second_stage_fine_tunes_the_first_and_a_checkpoint_reproduces_it(tmp_path):
    """The shape model's command runs two stages; starting from the first stage's saved checkpoint
    (--init) with the same flags gives the same weights, so a stage can be rerun on its own."""
    script = _load_script()
    flags = ["--model", TINY_SHAPE, "--steps", "2", "--batch", "8", "--warmup", "1", "--shape-batch", "4",
             "--bank-meshes", "3", "--threads", "1"]
    args = script.parse_args(flags)
    stage = script.second_stage(args)
    assert args.mottled == 0 and stage.mottled > 0 and stage.lr < args.lr  # the fine-tune's own settings
    assert stage.steps == 2  # but flags given hold for both stages
    assert script.second_stage(script.parse_args(flags + ["--first-stage-only"])) is None
    first = script.train(args)
    script.save_checkpoint(first, tmp_path / "first.pt")
    both = script.train(stage, script.half_state(first)).state_dict()
    resumed = script.parse_args(flags + ["--init", str(tmp_path / "first.pt")])
    assert script.second_stage(resumed) is None and resumed.mottled == stage.mottled and resumed.lr == stage.lr
    again = script.train(resumed, torch.load(tmp_path / "first.pt")).state_dict()
    assert all(torch.equal(both[k], again[k]) for k in both)
    assert any(not torch.equal(both[k], first.state_dict()[k]) for k in both)  # it did train on


def test_paired_pattern_loss_rewards_the_prompt_with_the_samples_own_colours_and_pattern():
    script = _load_script()
    open_clip = import_open_clip()
    torch.manual_seed(0)
    model, tokenizer = open_clip.create_model(TINY_SHAPE), open_clip.get_tokenizer(TINY_SHAPE)
    batch = make_batch(24, 32, torch.Generator().manual_seed(3), plain_fraction=0.0, mottled=0.3)
    with torch.no_grad():
        def described(pattern_of) -> torch.Tensor:  # each sample embedded as the text naming its colours
            texts = [f"{COLOUR_NAMES[int(c)]} and {COLOUR_NAMES[int(s)]} {noun}" for c, s, noun in
                     zip(batch.colour, batch.second, map(pattern_of, batch.pattern.tolist()))]
            return torch.nn.functional.normalize(model.encode_text(tokenizer(texts)), dim=-1)

        nouns = {1: "stripes", 2: "checks", 3: "dots", 4: "blotches"}
        right = described(lambda p: nouns[p])
        wrong = described(lambda p: nouns[p % 4 + 1])
        loss = [script.paired_pattern_loss(emb, model.logit_scale, batch, model, tokenizer, len(PATTERNS), 24,
                                           torch.Generator().manual_seed(0)) for emb in (right, wrong)]
    assert loss[0] < 0.5 * loss[1], loss


def test_a_starting_checkpoint_that_is_missing_or_of_another_model_is_refused_in_one_line(tmp_path, capsys):
    script = _load_script()
    with pytest.raises(SystemExit) as missing:
        script.parse_args(["--init", str(tmp_path / "nope.pt")])
    assert missing.value.code == 2 and "--init" in capsys.readouterr().err.splitlines()[-1]
    args = script.parse_args(["--init", str(tiny_checkpoint_path(TINY_SHAPE)), "--steps", "1"])  # the colour ViT
    with pytest.raises(SystemExit, match=r"^the starting weights are not a text2mesh-tiny-colour checkpoint: \d+ of"):
        script.train(args, torch.load(tiny_checkpoint_path(TINY_SHAPE)))
