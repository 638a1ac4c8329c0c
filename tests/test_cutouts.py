"""Cutouts: random square crops inside the picture, sized by a large-to-small schedule."""

import pytest
import torch

from text2mesh.cutouts import CutoutSchedule, cutout_boxes, make_cutouts

pytestmark = pytest.mark.usefixtures("one_thread")


def test_schedule_goes_from_large_to_small():
    schedule = CutoutSchedule(n=8, start=(0.6, 1.0), end=(0.2, 0.5))
    assert schedule.scales(0.0) == (0.6, 1.0)
    assert schedule.scales(1.0) == (0.2, 0.5)
    lo, hi = schedule.scales(0.5)
    assert 0.2 < lo < 0.6 and 0.5 < hi < 1.0


def test_boxes_are_squares_inside_the_picture_with_the_asked_sizes():
    boxes = cutout_boxes(200, (0.25, 0.5), (40, 100), generator=torch.Generator().manual_seed(0))
    top, left, h, w = boxes.T
    assert (h == w).all() and (h >= 10).all() and (h <= 20).all()
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 40).all() and (left + w <= 100).all()
    assert left.max() > 60  # spread over the whole width


def test_cutouts_show_the_part_of_the_picture_they_cut():
    picture = torch.zeros(1, 3, 64, 64)
    picture[:, 0, :, 32:] = 1.0  # right half red
    out = make_cutouts(picture, 32, (16, 16), (0.2, 0.3), full=True, generator=torch.Generator().manual_seed(1))
    assert out.shape == (32, 3, 16, 16)
    assert abs(float(out[0, 0].mean()) - 0.5) < 0.01  # the first one is the whole picture
    redness = out[1:, 0].mean(dim=(1, 2))
    assert (redness < 0.05).any() and (redness > 0.95).any()  # small crops see one half or the other


def test_cutouts_are_differentiable_and_seeded():
    picture = torch.rand(2, 3, 30, 40, requires_grad=True)
    a = make_cutouts(picture, 5, (8, 8), (0.3, 0.9), generator=torch.Generator().manual_seed(2))
    b = make_cutouts(picture, 5, (8, 8), (0.3, 0.9), generator=torch.Generator().manual_seed(2))
    assert a.shape == (10, 3, 8, 8) and torch.equal(a, b)
    a.sum().backward()
    assert picture.grad.abs().sum() > 0
