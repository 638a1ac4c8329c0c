"""Writing output files atomically: a reader never sees a half-written file.

Every file is first written under a temporary name in its destination folder and then moved
into place with :func:`os.replace`, which is atomic on one filesystem. An interrupted write
leaves the previous file (if any) untouched and removes its temporary file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import Text2MeshError


class ExportError(Text2MeshError):
    """An output file cannot be written (bad folder, no permission, disk full)."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); move it to ``path`` on success.

    Creates missing parent folders. Writers that need a file name (video encoders, PIL) write
    to the yielded path; if the block raises, the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create folder {path.parent}: {exc.strerror}; choose another -o") from None
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror}; check the folder and free space") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``Path(path)``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
