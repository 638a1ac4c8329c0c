"""The neural style field: Fourier-feature encoding and the colour/displacement MLP."""

from .encoding import FourierFeatures, gaussian_frequencies, progressive_mask
from .style_field import StyleField, displace

__all__ = ["FourierFeatures", "StyleField", "displace", "gaussian_frequencies", "progressive_mask"]
