import torch

from text2mesh.augment import (
    AugmentSpec,
    augment,
    homography_from_points,
    sample_crop_boxes,
)


def test_whole_view_without_perspective_is_identity():
    images = torch.rand(3, 3, 24, 24)
    out = augment(images, AugmentSpec(2, scale=(1, 1), distortion=0.0, p=0.0), size=(24, 24),
                  generator=torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 24, 24)
    assert torch.allclose(out[:3], images, atol=1e-5) and torch.allclose(out[3:], images, atol=1e-5)


def test_crop_area_within_requested_range():
    boxes = sample_crop_boxes(2000, (0.1, 0.4), (3 / 4, 4 / 3), generator=torch.Generator().manual_seed(0))
    area = boxes[:, 2] * boxes[:, 3]  # fraction of the [-1,1]^2 square
    assert area.min() >= 0.1 - 1e-5 and area.max() <= 0.4 + 1e-5
    assert torch.all(boxes[:, :2].abs() + boxes[:, 2:] <= 1 + 1e-5)


def test_local_crop_magnifies_a_part_of_the_image():
    image = torch.zeros(1, 3, 64, 64)
    image[..., :, 32:] = 1.0  # right half white
    out = augment(image, AugmentSpec(200, scale=(0.05, 0.05), distortion=0.0, p=0.0), size=(16, 16),
                  generator=torch.Generator().manual_seed(1))
    means = out.mean(dim=(1, 2, 3))
    # small crops mostly see one half only: many are nearly all black or all white
    assert (means < 0.05).sum() > 30 and (means > 0.95).sum() > 30


def test_perspective_fills_uncovered_pixels_with_the_fill_colour():
    image = torch.zeros(1, 3, 32, 32)
    out = augment(image, AugmentSpec(8, scale=(1, 1), distortion=0.8, p=1.0), size=(32, 32),
                  fill=torch.tensor([0.0, 0.0, 1.0]), generator=torch.Generator().manual_seed(2))
    blue = (out[:, 2] > 0.99) & (out[:, 0] < 0.01)
    assert blue.float().mean() > 0.05  # corners pulled in leave filled margins
    assert (out[:, 2] < 0.01).float().mean() > 0.3  # the (black) image is still there


def test_same_generator_state_same_augmentations_and_gradients_flow():
    images = torch.rand(2, 3, 16, 16, requires_grad=True)
    spec = AugmentSpec(3, scale=(0.1, 0.4))
    a = augment(images, spec, size=(8, 8), generator=torch.Generator().manual_seed(5))
    b = augment(images, spec, size=(8, 8), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    a.sum().backward()
    assert images.grad.abs().sum() > 0


def test_homography_maps_points():
    src = torch.tensor([[[-1.0, -1], [1, -1], [1, 1], [-1, 1]]], dtype=torch.float64)
    dst = torch.tensor([[[-0.8, -0.9], [0.9, -0.7], [1, 1], [-0.6, 0.8]]], dtype=torch.float64)
    h = homography_from_points(src, dst)
    p = torch.cat([src[0], torch.ones(4, 1, dtype=torch.float64)], 1) @ h[0].T
    assert torch.allclose(p[:, :2] / p[:, 2:], dst[0], atol=1e-9)
