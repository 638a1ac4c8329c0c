"""text2mesh: text-driven 3D mesh stylization with a pure-PyTorch differentiable renderer."""

__version__ = "0.1.0"

# The API is imported on first use so that ``text2mesh --help`` does not load torch.
_API = {
    "stylize": "api",
    "resume": "api",
    "load_run": "api",
    "StyleResult": "api",
    "imagine": "imaging",
    "imagine_variations": "imaging",
    "vary": "imaging",
    "load_image_run": "imaging",
    "ImageResult": "imaging",
    "load_config": "config",
    "Config": "config",
    "batch": "jobs",
    "load_clip": "guidance.clip",  # load once, pass as clip= to every run of a process
}

__all__ = ["__version__", *_API.keys()]  # noqa: PLE0604 (names are strings)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'text2mesh' has no attribute {name!r}")
