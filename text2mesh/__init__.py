"""text2mesh: text-driven 3D mesh stylization with a pure-PyTorch differentiable renderer."""

__version__ = "0.1.0"
