"""``index.html``: a page of a job store's jobs, each with its turntable, prompt, settings, status
and links to its files. Static HTML with relative links, so the folder can be copied or served
as it is."""

from __future__ import annotations

import html
import time
from pathlib import Path
from urllib.parse import quote

from ..export.files import write_bytes_atomic
from .store import JobRecord, JobStore

GALLERY = "index.html"
PREVIEWS = ("renders/turntable.gif", "renders/before_after.png", "final.png", "renders/views.png")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
.jobs { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 1em; }
.job { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 0.6em; }
.job img { width: 100%; background: #fff; }
.status { font-weight: bold; }
.done { color: #2a7d2a; } .failed { color: #b22; } .running { color: #b70; } .queued { color: #777; }
.settings, .files { font-size: 0.85em; color: #555; word-break: break-all; }
"""


def _preview(run: Path) -> str | None:
    return next((name for name in PREVIEWS if (run / name).is_file()), None)


def _link(record: JobRecord, name: str) -> str:
    return quote(f"{record.run_dir}/{name}")


def _settings(record: JobRecord) -> str:
    spec = record.spec
    parts = [f"{key} {value}" for key, value in (("preset", spec.preset), ("seed", spec.seed), ("iters", spec.iters),
                                                  ("clip", spec.clip_model)) if value is not None]
    parts += [f"{key}={value}" for key, value in spec.set]
    parts += [f"not: {n}" for n in spec.negatives]
    return ", ".join(parts) or "defaults"


def _card_html(store: JobStore, record: JobRecord) -> str:
    run = store.run_path(record)
    spec = record.spec
    preview = _preview(run) if record.status == "done" else None
    image = f'<a href="{_link(record, preview)}"><img src="{_link(record, preview)}" alt="{html.escape(spec.prompt)}"></a>' if preview else ""
    files = store.files(record)
    shown = [f for f in files if "/" not in f or f in PREVIEWS]
    links = " · ".join(f'<a href="{_link(record, f)}">{html.escape(f)}</a>' for f in shown)
    mesh = Path(spec.mesh).name if spec.mesh else "picture"
    error = f'<div class="failed">{html.escape(record.error)}</div>' if record.error and record.status != "done" else ""
    took = ""
    if record.started and record.ended and record.status == "done":
        took = f" in {record.ended - record.started:.0f} s"
    return (
        f'<div class="job" id="{html.escape(record.id)}">{image}'
        f"<div><b>{html.escape(spec.prompt)}</b> · {html.escape(mesh)}</div>"
        f'<div class="status {record.status}">{record.status}{took} (attempt {record.attempt})</div>{error}'
        f'<div class="settings">{html.escape(_settings(record))}</div>'
        f'<div class="files">{links}</div></div>'
    )


FINISHED = ("done", "failed", "cancelled")


class Gallery:
    """The ``index.html`` of a job store, written again whenever a job changes.

    A finished job's card is built once and kept (its run folder is no longer written by the
    job; a file added later, as serve's baked ``textured.glb``, changes the folder's time and
    rebuilds it): with thousands of jobs, refreshing the page at each job's end no longer lists
    every run folder again.
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._cards: dict[str, tuple[tuple, str]] = {}

    def _card(self, record: JobRecord) -> str:
        if record.status not in FINISHED:
            return _card_html(self.store, record)
        run = self.store.run_path(record)
        key = (record.status, record.attempt, record.ended, record.error,
               run.stat().st_mtime_ns if run.is_dir() else None)
        cached = self._cards.get(record.id)
        if cached is None or cached[0] != key:
            cached = self._cards[record.id] = (key, _card_html(self.store, record))
        return cached[1]

    def write(self) -> Path:
        """Write ``index.html`` in the store (atomically) and return its path."""
        records = list(self.store.records.values())
        counts = {s: sum(r.status == s for r in records) for s in ("done", "running", "queued", "failed")}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        refresh = '<meta http-equiv="refresh" content="10">' if counts["running"] or counts["queued"] else ""
        cards = "\n".join(self._card(r) for r in records)
        page = (
            f'<!doctype html><html><head><meta charset="utf-8">{refresh}<title>text2mesh jobs</title>'
            f"<style>{_STYLE}</style></head><body><h1>text2mesh jobs</h1>"
            f"<p>{len(records)} jobs: {summary} · updated {time.strftime('%Y-%m-%d %H:%M:%S')}</p>"
            f'<div class="jobs">\n{cards}\n</div></body></html>\n'
        )
        return write_bytes_atomic(self.store.root / GALLERY, page.encode())
