"""The neural style field: per-point colour and displacement from position.

``StyleField`` maps a vertex position to an RGB colour in [0, 1] and a scalar displacement
bounded by ``normratio``; :func:`displace` moves vertices along their normals. The last layer of
each head starts at zero, so an untrained field gives plain 0.5 grey and no displacement.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import FieldConfig
from .encoding import FourierFeatures

_AXES = {"x": 0, "y": 1, "z": 2}


def _mlp(in_dim: int, width: int, n_layers: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [nn.Linear(in_dim if i == 0 else width, width), nn.ReLU(inplace=True)]
    return layers


def _zero_linear(in_dim: int, out_dim: int) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class StyleField(nn.Module):
    """MLP over Fourier features with a shared trunk and colour / displacement heads.

    Args:
        cfg: field settings (sigma, sizes, normratio, symmetry, standardization, ...).
        points: [V, 3] the base mesh's vertices; with ``cfg.standardize`` their per-axis mean
            and std standardize the inputs (stored as buffers, so saved with the weights).
        generator: CPU random source for the weights and frequencies (reproducible runs).
    """

    def __init__(
        self,
        cfg: FieldConfig,
        *,
        points: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        mean = torch.zeros(3)
        std = torch.ones(3)
        if cfg.standardize and points is not None:
            pts = self._mirror(points.detach().float().cpu())
            mean, std = pts.mean(dim=0), pts.std(dim=0).clamp_min(1e-6)
        self.register_buffer("input_mean", mean)
        self.register_buffer("input_std", std)
        self.encoding = FourierFeatures(
            3, cfg.n_frequencies, cfg.sigma, progressive=cfg.progressive, ramp=cfg.progressive_ramp, generator=generator
        )
        with _seeded(generator):
            trunk = [nn.Linear(self.encoding.out_dim, cfg.width), nn.ReLU(inplace=True)]
            self.trunk = nn.Sequential(*trunk, *_mlp(cfg.width, cfg.width, cfg.depth))
            self.color_head = nn.Sequential(*_mlp(cfg.width, cfg.width, cfg.head_depth), _zero_linear(cfg.width, 3))
            self.displacement_head = nn.Sequential(
                *_mlp(cfg.width, cfg.width, cfg.head_depth), _zero_linear(cfg.width, 1)
            )

    def _mirror(self, xyz: Tensor) -> Tensor:
        if not self.cfg.symmetry:
            return xyz
        axis = _AXES[self.cfg.symmetry_axis]
        mirrored = xyz.clone()
        mirrored[:, axis] = xyz[:, axis].abs()
        return mirrored

    def encode(self, xyz: Tensor, progress: float = 1.0) -> Tensor:
        """Input features: mirrored, standardized, Fourier-encoded positions.

        Args:
            xyz: [V, 3] float32 vertex positions (normalized frame).
            progress: training progress in [0, 1] for the progressive encoding.
        Returns:
            [V, 3 + 2K] features (constant once the progressive encoding is fully open, so
            callers may compute them once; see :meth:`features_constant_from`).
        """
        x = (self._mirror(xyz) - self.input_mean) / self.input_std
        return self.encoding(x, progress)

    def features_constant_from(self, progress: float) -> bool:
        """True when :meth:`encode` gives the same features at ``progress`` and after."""
        return self.encoding.is_constant_from(progress)

    def decode(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Colours and displacements from :meth:`encode`'s features.

        Returns:
            colors: [V, 3] in [0, 1] (0.5 grey + tanh/2; constant grey if colours are off).
            displacement: [V] in [-normratio, normratio] (zeros if displacement is off).
        """
        n = features.shape[0]
        with torch.autocast(features.device.type, torch.bfloat16, enabled=self.uses_bf16(features)):
            h = self.trunk(features)
            color_raw = self.color_head(h) if self.cfg.colors else None
            displacement_raw = self.displacement_head(h)[:, 0] if self.cfg.displacement else None
        if color_raw is not None:
            colors = 0.5 + 0.5 * torch.tanh(color_raw.to(features.dtype))
        else:
            colors = features.new_full((n, 3), 0.5)
        if displacement_raw is not None:
            displacement = self.cfg.normratio * torch.tanh(displacement_raw.to(features.dtype))
        else:
            displacement = features.new_zeros(n)
        return colors, displacement

    def uses_bf16(self, features: Tensor) -> bool:
        """Whether :meth:`decode` runs its matrix products in bf16 (see FieldConfig.precision).

        Only float32 inputs qualify (float64, e.g. in gradient checks, stays exact).
        """
        if features.dtype != torch.float32 or self.cfg.precision == "fp32":
            return False
        if self.cfg.precision == "bf16":
            return True
        return fast_bf16(features.device)

    def forward(self, xyz: Tensor, progress: float = 1.0) -> tuple[Tensor, Tensor]:
        """Evaluate the field: ``decode(encode(xyz, progress))``.

        Args:
            xyz: [V, 3] float32 vertex positions (normalized frame).
            progress: training progress in [0, 1] for the progressive encoding.
        Returns:
            colors [V, 3] in [0, 1] and displacement [V] in [-normratio, normratio].
        """
        return self.decode(self.encode(xyz, progress))


def fast_bf16(device: torch.device) -> bool:
    """True where bf16 matrix products are much faster than fp32: CUDA GPUs with bf16 support,
    and CPUs with AMX tiles (oneDNN uses them for bf16 GEMMs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(amx and amx())
    return False


def displace(vertices: Tensor, normals: Tensor, displacement: Tensor) -> Tensor:
    """Move vertices along their normals.

    Args:
        vertices: [V, 3]; normals: [V, 3] unit vertex normals of the base mesh;
        displacement: [V] signed distances.
    Returns:
        [V, 3] displaced vertices (normals of the result must be recomputed for shading).
    """
    return vertices + normals * displacement.unsqueeze(-1)


class _seeded:
    """Context manager: draw nn.Linear default initializations from ``generator``'s state.

    nn.init uses the global RNG; fork it, seed it from the generator and restore it afterwards,
    so building a field neither depends on nor disturbs global random state.
    """

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator
        self._fork = None

    def __enter__(self) -> None:
        if self.generator is None:
            return
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(seed)

    def __exit__(self, *exc) -> None:
        if self._fork is not None:
            self._fork.__exit__(*exc)
