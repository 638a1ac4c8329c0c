"""The project's own error types.

Every error a user can cause (bad file, bad flag, missing weights, occupied output folder)
is raised as a :class:`Text2MeshError` subclass whose message is one line saying what went
wrong and what to do. The CLI prints that line and exits non-zero; anything else is a bug.
"""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of a foreign exception's message (at most ``limit`` characters), or its type
    name when it has none: what a one-line error quotes of a library's multi-line complaint."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


class Text2MeshError(Exception):
    """Base class: a user-facing problem with a one-line message."""


class MeshError(Text2MeshError):
    """A mesh file is missing, unreadable, or not usable as a surface."""


class ConfigError(Text2MeshError):
    """A configuration file, preset or flag value is invalid."""


class ClipError(Text2MeshError):
    """A CLIP model or its weights cannot be loaded."""


class ImageError(Text2MeshError):
    """An image file (prompt or init image) is missing or unreadable."""


class RunFolderError(Text2MeshError):
    """An output/run folder cannot be created, reused or resumed."""


class Interrupted(Text2MeshError):
    """The run was stopped by SIGINT/SIGTERM after saving its state."""
