import math

import pytest
import torch

from text2mesh.config import FieldConfig
from text2mesh.field import FourierFeatures, StyleField, displace, progressive_mask


def small_cfg(**kw) -> FieldConfig:
    base = {"n_frequencies": 16, "width": 32, "depth": 2, "head_depth": 1}
    base.update(kw)
    return FieldConfig(**base)


def test_untrained_field_is_plain_grey_without_displacement():
    field = StyleField(small_cfg(), generator=torch.Generator().manual_seed(0))
    colors, disp = field(torch.randn(50, 3))
    assert colors.shape == (50, 3) and disp.shape == (50,)
    assert torch.all(colors == 0.5) and torch.all(disp == 0)


def test_outputs_stay_in_range_after_large_weights():
    field = StyleField(small_cfg(normratio=0.05), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in field.parameters():
            p.normal_(0, 5)
    colors, disp = field(torch.randn(200, 3))
    assert colors.min() >= 0 and colors.max() <= 1 and colors.std() > 0.1
    assert disp.abs().max() <= 0.05 + 1e-7 and disp.abs().max() > 0.04


def test_same_seed_same_field_different_seed_different_field():
    a = StyleField(small_cfg(), generator=torch.Generator().manual_seed(3))
    b = StyleField(small_cfg(), generator=torch.Generator().manual_seed(3))
    c = StyleField(small_cfg(), generator=torch.Generator().manual_seed(4))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.trunk[0].weight, c.trunk[0].weight)


def test_field_construction_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    StyleField(small_cfg(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), expected)


def test_fourier_features_layout_and_frequency_scale():
    enc = FourierFeatures(3, 2000, sigma=5.0, generator=torch.Generator().manual_seed(0))
    assert enc.out_dim == 3 + 4000
    assert enc.frequencies.std().item() == pytest.approx(5.0, rel=0.05)
    x = torch.tensor([[0.1, -0.2, 0.3]])
    f = enc(x)
    assert torch.equal(f[:, :3], x)
    angles = 2 * math.pi * x @ enc.frequencies
    assert torch.allclose(f[:, 3:2003], torch.sin(angles), atol=1e-5)
    assert torch.allclose(f[:, 2003:], torch.cos(angles), atol=1e-5)


def test_progressive_mask_unmasks_low_frequencies_first():
    assert torch.all(progressive_mask(8, 0.0) == 0)
    assert torch.all(progressive_mask(8, 1.0) == 1)
    half = progressive_mask(8, 0.5)
    assert torch.equal(half, torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))
    enc = FourierFeatures(3, 8, 5.0, progressive=True, generator=torch.Generator().manual_seed(0))
    norms = enc.frequencies.norm(dim=0)
    assert torch.all(norms[1:] >= norms[:-1])
    out = enc(torch.randn(4, 3), progress=0.5)
    assert torch.all(out[:, 3 + 4 : 3 + 8] == 0) and torch.all(out[:, 3 + 8 + 4 :] == 0)


def test_progressive_encoding_opens_every_band_within_its_ramp():
    # the reference's demos: all bands open after ~6% of the run, whatever its length
    enc = FourierFeatures(3, 8, 5.0, progressive=True, ramp=0.06, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 3)
    half = enc(x, progress=0.03)
    assert torch.all(half[:, 3 + 4 : 3 + 8] == 0) and torch.all(half[:, 3:7] != 0)
    assert not enc.is_constant_from(0.059) and enc.is_constant_from(0.06)
    assert torch.equal(enc(x, progress=0.06), FourierFeatures(3, 8, 5.0, generator=torch.Generator().manual_seed(0))(x))


def test_symmetry_gives_mirror_images_the_same_style():
    field = StyleField(small_cfg(symmetry=True, symmetry_axis="x"), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in field.parameters():
            p.normal_(0, 1)
    x = torch.randn(20, 3)
    mirrored = x * torch.tensor([-1.0, 1.0, 1.0])
    c1, d1 = field(x)
    c2, d2 = field(mirrored)
    assert torch.allclose(c1, c2) and torch.allclose(d1, d2)


def test_standardization_stats_come_from_the_points_and_are_saved():
    points = torch.randn(500, 3) * torch.tensor([1.0, 10.0, 0.1]) + 3.0
    field = StyleField(small_cfg(standardize=True), points=points, generator=torch.Generator().manual_seed(0))
    state = field.state_dict()
    assert torch.allclose(state["input_mean"], points.mean(0))
    assert torch.allclose(state["input_std"], points.std(0))


def test_heads_can_be_switched_off_and_gradients_flow():
    field = StyleField(small_cfg(displacement=False), generator=torch.Generator().manual_seed(0))
    x = torch.randn(10, 3)
    colors, disp = field(x)
    assert torch.all(disp == 0)
    colors.sum().backward()
    assert field.color_head[-1].weight.grad.abs().sum() > 0


def test_displace_moves_along_normals():
    v = torch.zeros(2, 3)
    n = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    out = displace(v, n, torch.tensor([0.1, -0.2]))
    assert torch.allclose(out, torch.tensor([[0.0, 0.1, 0.0], [-0.2, 0.0, 0.0]]))


def _trained_like_field(precision: str) -> StyleField:
    """A field whose heads are no longer zero, so its outputs vary over space."""
    field = StyleField(FieldConfig(width=64, n_frequencies=32, precision=precision), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for head in (field.color_head[-1], field.displacement_head[-1]):
            head.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(1))
    return field


def test_bf16_matrix_products_match_fp32_within_a_percent():
    xyz = torch.rand(500, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1
    field = _trained_like_field("fp32")
    colors32, disp32 = field(xyz)
    field.cfg.precision = "bf16"
    colors16, disp16 = field(xyz)
    assert colors16.dtype == torch.float32 and disp16.dtype == torch.float32
    color_range = colors32.max() - colors32.min()
    assert color_range > 0.1  # the outputs do vary over space
    assert (colors16 - colors32).abs().max() < 0.01 * color_range + 2 / 255
    assert (disp16 - disp32).abs().max() < 0.01 * field.cfg.normratio  # 1% of the bound: invisible
    colors16.sum().backward()  # gradients reach the fp32 weights
    assert field.trunk[0].weight.grad is not None and field.trunk[0].weight.grad.dtype == torch.float32


def test_float64_inputs_never_use_bf16():
    field = _trained_like_field("bf16").double()
    xyz = torch.rand(50, 3, dtype=torch.float64)
    assert not field.uses_bf16(field.encode(xyz))
    colors, _ = field(xyz)
    assert colors.dtype == torch.float64
