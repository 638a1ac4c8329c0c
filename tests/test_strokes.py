"""The stroke rasterizer: strokes land where their control points say, and every parameter learns."""

import pytest
import torch

from text2mesh.generators.brush import (
    Strokes,
    bezier_points,
    composite_over,
    paint_in_order,
    random_strokes,
    render_strokes,
    stroke_coverage,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def one_stroke(points, width=0.1, color=(1.0, 0.0, 0.0), opacity=1.0, grad=False) -> Strokes:
    tensors = [
        torch.tensor([points], dtype=torch.float32),
        torch.tensor([width], dtype=torch.float32),
        torch.tensor([color], dtype=torch.float32),
        torch.tensor([opacity], dtype=torch.float32),
    ]
    return Strokes(*(t.requires_grad_(grad) for t in tensors))


def test_bezier_curve_passes_through_its_end_points():
    control = torch.tensor([[[0.1, 0.2], [0.3, 0.9], [0.6, -0.4], [0.9, 0.5]]])
    pts = bezier_points(control, 9)
    assert torch.allclose(pts[0, 0], control[0, 0]) and torch.allclose(pts[0, -1], control[0, 3])


def test_horizontal_stroke_paints_its_band_only():
    # y = 0.25 from x = 0.2 to 0.8 on a 40 x 80 picture (y down, like PIL)
    stroke = one_stroke([[0.2, 0.25], [0.4, 0.25], [0.6, 0.25], [0.8, 0.25]], width=0.2)
    img = render_strokes(stroke, (40, 80))
    red = (img[0] > 0.9) & (img[1] < 0.1)
    rows = red.any(dim=1).nonzero().flatten()
    cols = red.any(dim=0).nonzero().flatten()
    # centre line y = 0.25 * 40 = 10 px, half width 0.1 * 40 = 4 px: rows 6..13 are inside,
    # the outermost ones partly; x from 16 to 64 px plus round caps of 4 px
    assert 6 <= rows.min() <= 7 and 12 <= rows.max() <= 13
    assert 12 <= cols.min() <= 13 and 66 <= cols.max() <= 67
    assert torch.allclose(img[:, 30:, :], torch.ones(3, 10, 80))  # below the stroke: background


def test_diagonal_stroke_goes_from_top_left_to_bottom_right():
    stroke = one_stroke([[0.1, 0.1], [0.4, 0.4], [0.6, 0.6], [0.9, 0.9]], width=0.06, color=(0, 0, 1))
    img = render_strokes(stroke, (50, 50))
    blue = img[2] - img[0]
    assert blue[5, 5] > 0.9 and blue[25, 25] > 0.9 and blue[44, 44] > 0.9
    assert blue[5, 44] < 0.01 and blue[44, 5] < 0.01


def test_opacity_blends_with_background_and_later_strokes_cover_earlier_ones():
    horizontal = [[0.0, 0.5], [0.3, 0.5], [0.7, 0.5], [1.0, 0.5]]
    half = render_strokes(one_stroke(horizontal, width=0.3, color=(0, 0, 0), opacity=0.5), (20, 20))
    assert abs(float(half[:, 10, 10].mean()) - 0.5) < 0.01
    red = one_stroke(horizontal, width=0.3, color=(1, 0, 0))
    green = one_stroke(horizontal, width=0.3, color=(0, 1, 0))
    both = Strokes(*(torch.cat([a, b]) for a, b in zip(
        (red.points, red.widths, red.colors, red.opacities),
        (green.points, green.widths, green.colors, green.opacities))))
    img = render_strokes(both, (20, 20), background=torch.zeros(3, 20, 20))
    assert torch.allclose(img[:, 10, 10], torch.tensor([0.0, 1.0, 0.0]), atol=1e-3)


def test_gradients_reach_every_stroke_parameter():
    stroke = one_stroke([[0.2, 0.3], [0.4, 0.7], [0.6, 0.2], [0.8, 0.6]], width=0.08, opacity=0.8, grad=True)
    img = render_strokes(stroke, (32, 32))
    target = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    ((img - target) ** 2).sum().backward()
    for name in ("points", "widths", "colors", "opacities"):
        grad = getattr(stroke, name).grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name
    assert (stroke.points.grad.abs().sum(-1) > 0).all()  # all four control points


def test_coverage_matches_the_window_free_definition():
    strokes = random_strokes(5, generator=torch.Generator().manual_seed(1))
    size = (24, 36)
    coverage = stroke_coverage(strokes, size, segments=8, softness=1.0, margin=1000.0)
    windowed = stroke_coverage(strokes, size, segments=8, softness=1.0)
    assert torch.allclose(coverage, windowed, atol=3e-3)


def test_non_square_pictures_keep_round_brushes_round():
    dot = one_stroke([[0.5, 0.5]] * 4, width=0.5, color=(0, 0, 0))
    img = render_strokes(dot, (40, 80))
    dark = img[0] < 0.5
    height = int(dark.any(dim=1).sum())
    width = int(dark.any(dim=0).sum())
    assert abs(height - width) <= 1 and abs(height - 20) <= 1


def test_closed_form_compositing_equals_painting_layer_by_layer_with_gradients():
    g = torch.Generator().manual_seed(2)
    alpha = torch.rand(6, 5, 7, generator=g)
    alpha[2, 1, 1] = 1.0  # fully opaque spots: products with exact zeros
    alpha[4, 2, 3] = 1.0
    alpha.requires_grad_()
    colors = torch.rand(6, 3, generator=g, requires_grad=True)
    background = torch.rand(3, 5, 7, generator=g, requires_grad=True)
    layered = background
    for a, c in zip(alpha, colors):
        layered = layered * (1 - a) + c[:, None, None] * a
    closed = composite_over(alpha, colors, background)
    assert torch.allclose(closed, layered, atol=1e-6)
    weights = torch.rand(3, 5, 7, generator=g)
    for x, y in zip(torch.autograd.grad((closed * weights).sum(), [alpha, colors, background]),
                    torch.autograd.grad((layered * weights).sum(), [alpha, colors, background])):
        assert torch.allclose(x, y, atol=1e-5)


def test_painting_frames_are_the_painting_after_each_count_of_strokes():
    strokes = random_strokes(9, generator=torch.Generator().manual_seed(3))
    counts = [0, 1, 4, 4, 9]
    frames = paint_in_order(strokes, (24, 32), (0.2, 0.5, 0.9), counts)
    assert frames.shape == (5, 3, 24, 32)
    for frame, count in zip(frames, counts):
        assert torch.allclose(frame, render_strokes(strokes[:count], (24, 32), (0.2, 0.5, 0.9)), atol=1e-5)
    assert not torch.equal(frames[1], frames[2])  # strokes do appear between frames
