"""Random crops and perspective warps of rendered views, as one batch for CLIP.

Every augmented image is one resampling of a render: a random crop (area fraction and aspect
ratio drawn as in torchvision's RandomResizedCrop) followed by a random perspective warp (each
corner pulled inward by up to ``distortion`` of the half-size, applied with probability ``p``,
uncovered pixels filled with the background colour). Both are folded into ONE sampling grid per
image, so a whole iteration's augmentations cost a single ``grid_sample`` and stay
differentiable with respect to the renders. Randomness comes only from the passed CPU generator,
so the same seed gives the same augmentations on any device.

Coordinates are grid_sample's normalized ones: x right, y down, both in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AugmentSpec:
    """One kind of augmentation.

    Attributes:
        n: augmentations per render.
        scale: (min, max) crop area as a fraction of the image area; (1, 1) keeps the whole view.
        distortion: perspective strength in [0, 1] (0: none).
        p: probability that an image gets the perspective warp.
        ratio: (min, max) crop aspect ratio (width / height).
    """

    n: int
    scale: tuple[float, float] = (1.0, 1.0)
    distortion: float = 0.5
    p: float = 0.8
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)


def sample_crop_boxes(
    n: int, scale: tuple[float, float], ratio: tuple[float, float], *, generator: torch.Generator | None = None
) -> Tensor:
    """Random crop boxes inside the image.

    Returns:
        [n, 4] float32 (center_x, center_y, half_width, half_height) in normalized coordinates;
        half sizes are at most 1 (the whole image) and the box lies inside [-1, 1]^2.
    """
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    aspect = torch.exp(log_r)
    width, height = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    too_big = (width > 1.0) | (height > 1.0)  # keep the area, drop the aspect (square crop)
    side = torch.sqrt(area).clamp(max=1.0)
    width = torch.where(too_big, side, width)
    height = torch.where(too_big, side, height)
    cx = (1.0 - width) * (2.0 * u[:, 2] - 1.0)
    cy = (1.0 - height) * (2.0 * u[:, 3] - 1.0)
    return torch.stack([cx, cy, width, height], dim=-1).float()


def homography_from_points(src: Tensor, dst: Tensor) -> Tensor:
    """Projective maps sending 4 points ``src`` to ``dst`` (batched DLT with h33 = 1).

    Args:
        src, dst: [n, 4, 2] float64 point pairs.
    Returns:
        [n, 3, 3] float64 matrices H with dst ~ H @ [src, 1].
    """
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=1)
    b = torch.cat([u, v], dim=1)
    h = torch.linalg.solve(a, b)
    return torch.cat([h, torch.ones_like(h[:, :1])], dim=1).reshape(-1, 3, 3)


def sample_perspectives(
    n: int, distortion: float, p: float, *, generator: torch.Generator | None = None
) -> Tensor:
    """Random perspective warps as output->input homographies.

    Each output corner comes from a source corner pulled inward by U(0, distortion) of the
    half-size along x and y (torchvision's RandomPerspective); an image is left unwarped
    with probability 1 - p.

    Returns:
        [n, 3, 3] float64 homographies mapping output coordinates to crop coordinates.
    """
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    shift = torch.rand(n, 4, 2, generator=generator, dtype=torch.float64) * distortion
    apply = torch.rand(n, generator=generator, dtype=torch.float64) < p
    shift = shift * apply[:, None, None]
    warped = corners - corners.sign() * shift  # move each corner toward the centre
    return homography_from_points(warped, corners.expand(n, 4, 2))


def sampling_grids(boxes: Tensor, homographies: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Fold perspective then crop into one grid per image.

    Args:
        boxes: [n, 4] crop boxes from :func:`sample_crop_boxes`.
        homographies: [n, 3, 3] from :func:`sample_perspectives`.
        size: (height, width) of the output images.
    Returns:
        grid: [n, h, w, 2] float32 source coordinates for ``grid_sample``;
        inside: [n, 1, h, w] float32, 1 where the warp covers the pixel, 0 where it must be filled.
    """
    h, w = size
    ys = (torch.arange(h, dtype=torch.float64) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float64) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pix = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).reshape(-1, 3)
    q = torch.einsum("nij,pj->npi", homographies, pix)
    q = q[..., :2] / q[..., 2:].clamp_min(1e-9)
    inside = (q.abs() <= 1.0).all(dim=-1).float().reshape(-1, 1, h, w)
    boxes = boxes.to(torch.float64)
    src = boxes[:, None, :2] + boxes[:, None, 2:] * q
    return src.reshape(-1, h, w, 2).float(), inside.float()


def augment(
    images: Tensor,
    spec: AugmentSpec,
    *,
    size: tuple[int, int],
    fill: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Augment a batch of renders ``spec.n`` times each.

    Args:
        images: [B, C, H, W] float renders.
        spec: what to draw.
        size: (h, w) of the outputs (usually the CLIP input size).
        fill: [C] colour for pixels the perspective warp uncovers (default: zeros).
        generator: CPU random source.
    Returns:
        [spec.n * B, C, h, w]; index ``a * B + b`` is augmentation ``a`` of render ``b``.
    """
    b = images.shape[0]
    n = spec.n * b
    if n == 0:
        return images.new_zeros(0, images.shape[1], *size)
    boxes = sample_crop_boxes(n, spec.scale, spec.ratio, generator=generator)
    homographies = sample_perspectives(n, spec.distortion, spec.p, generator=generator)
    return warp(images.repeat(spec.n, 1, 1, 1), boxes, homographies, size=size, fill=fill)


def warp(
    images: Tensor, boxes: Tensor, homographies: Tensor, *, size: tuple[int, int], fill: Tensor | None = None
) -> Tensor:
    """Crop each image to its box, then warp it by its homography, in one resampling.

    Args:
        images: [n, C, H, W] float.
        boxes: [n, 4] from :func:`sample_crop_boxes`; homographies: [n, 3, 3] from
            :func:`sample_perspectives`.
        size: (h, w) of the outputs.
        fill: [C] colour of the pixels the warp uncovers (default: zeros).
    Returns:
        [n, C, h, w], differentiable with respect to ``images``.
    """
    grid, inside = sampling_grids(boxes, homographies, size)
    grid, inside = grid.to(images.device, images.dtype), inside.to(images.device, images.dtype)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if fill is None:
        return out * inside
    fill = fill.to(images.device, images.dtype).reshape(1, -1, 1, 1)
    return out * inside + fill * (1.0 - inside)
