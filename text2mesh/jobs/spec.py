"""What one job is, and the manifest that lists many: YAML (``defaults``, ``jobs``, ``grid``) or CSV.

A job is a mesh and a prompt (or, without a mesh, a picture from ``imagine``) with the settings
a user would give on the command line: ``preset``, ``clip_model``, ``seed``, ``iters`` and
``set`` (the dotted fields of ``--set``). A manifest is checked as a whole before anything runs:
an unknown key, a missing mesh or a bad override is refused in one line naming the job and the
field. Every job resolves to an ordinary :class:`~text2mesh.config.Config`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import Config, dotted_override, load_config, merge_dicts, parse_setting
from ..errors import ConfigError, Text2MeshError
from ..run import slug

JOB_KEYS = ("name", "mesh", "prompt", "negatives", "preset", "clip_model", "seed", "iters", "set")
MANIFEST_KEYS = ("defaults", "jobs", "grid")
GRID_KEYS = ("meshes", "prompts", "seeds")


@dataclass(frozen=True)
class JobSpec:
    """One job. mesh: an absolute path (None: a picture from ``imagine``); set: dotted config
    fields -> values, as ``--set`` takes them."""

    name: str
    prompt: str
    mesh: str | None = None
    negatives: tuple[str, ...] = ()
    preset: str | None = None
    clip_model: str | None = None
    seed: int | None = None
    iters: int | None = None
    set: tuple[tuple[str, Any], ...] = ()

    @property
    def kind(self) -> str:
        """``stylize`` (a mesh) or ``imagine`` (a picture)."""
        return "imagine" if self.mesh is None else "stylize"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for jobs.jsonl and for worker processes)."""
        out = dataclasses.asdict(self)
        out["negatives"] = list(self.negatives)
        out["set"] = dict(self.set)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        return cls(**{**data, "negatives": tuple(data.get("negatives", ())),
                      "set": tuple(dict(data.get("set") or {}).items())})

    def config(self) -> Config:
        """The resolved config of this job (preset <- set <- clip_model/seed/iters <- prompts)."""
        from ..targets import with_prompts

        overrides: dict = {}
        for key, value in self.set:
            overrides = merge_dicts(overrides, dotted_override(key, value))
        for key, value in (("guidance.clip_model", self.clip_model), ("optim.seed", self.seed),
                           ("optim.iters", self.iters)):
            if value is not None:
                overrides = merge_dicts(overrides, dotted_override(key, value))
        cfg = load_config(preset=self.preset or "default", overrides=overrides)
        return with_prompts(cfg, self.prompt, (), (), self.negatives)


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _as_mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, f"expected a mapping of keys, got {type(value).__name__}")
    return value


def _check_keys(entry: Mapping, allowed: Iterable[str], where: str) -> None:
    for key in entry:
        if key not in allowed:
            raise _fail(where, f"unknown key {key!r}; known: {', '.join(allowed)}")


def _resolve_mesh(value: Any, base: Path, where: str) -> str:
    from ..mesh.files import check_mesh_path

    if not isinstance(value, str) or not value:
        raise _fail(f"{where} field mesh", "give a mesh file path")
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [base / path, Path.cwd() / path]
    found = next((p for p in candidates if p.exists()), candidates[0])
    try:
        check_mesh_path(found)
    except Text2MeshError as exc:
        raise _fail(f"{where} field mesh", str(exc)) from None
    return str(found.resolve())


def _set_items(value: Any, where: str) -> tuple[tuple[str, Any], ...]:
    """``set`` as a mapping {"optim.iters": 60} or a list of "KEY=VALUE" strings."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(parse_setting(item, f"{where} field set") for item in value)
    return tuple(_as_mapping(value, f"{where} field set").items())


def _job(entry: Mapping, defaults: Mapping, base: Path, where: str) -> JobSpec:
    _check_keys(entry, JOB_KEYS, where)
    merged = {**defaults, **entry}
    merged["set"] = dict((*_set_items(defaults.get("set"), "defaults"), *_set_items(entry.get("set"), where)))
    prompt = merged.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _fail(f"{where} field prompt", "give the text prompt")
    negatives = merged.get("negatives") or ()
    negatives = (negatives,) if isinstance(negatives, str) else tuple(str(n) for n in negatives)
    mesh = merged.get("mesh")
    for key, kind in (("seed", int), ("iters", int)):
        value = merged.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise _fail(f"{where} field {key}", f"expected an integer, got {value!r}")
    for key in ("preset", "clip_model", "name"):
        value = merged.get(key)
        if value is not None and not isinstance(value, str):
            raise _fail(f"{where} field {key}", f"expected a string, got {value!r}")
    spec = JobSpec(
        name=merged.get("name") or "",
        prompt=prompt.strip(),
        mesh=None if mesh is None else _resolve_mesh(mesh, base, where),
        negatives=negatives,
        preset=merged.get("preset"),
        clip_model=merged.get("clip_model"),
        seed=merged.get("seed"),
        iters=merged.get("iters"),
        set=tuple(merged["set"].items()),
    )
    try:
        spec.config()
    except Text2MeshError as exc:
        raise _fail(where, str(exc)) from None
    return spec


def _grid_entries(grid: Mapping, where: str) -> list[dict]:
    _check_keys(grid, GRID_KEYS, where)
    lists = {}
    for key in GRID_KEYS:
        value = grid.get(key)
        if value is not None and not isinstance(value, list):
            raise _fail(f"{where} field {key}", "expected a list")
        lists[key] = value
    if not lists["prompts"]:
        raise _fail(f"{where} field prompts", "give at least one prompt")
    meshes = lists["meshes"] or [None]
    seeds = lists["seeds"] or [None]
    entries = []
    for mesh, prompt, seed in itertools.product(meshes, lists["prompts"], seeds):
        entry = {"prompt": prompt}
        if mesh is not None:
            entry["mesh"] = mesh
        if seed is not None:
            entry["seed"] = seed
        entries.append(entry)
    return entries


def _auto_name(spec: JobSpec) -> str:
    stem = Path(spec.mesh).stem if spec.mesh else "image"
    seed = "" if spec.seed is None else f"-s{spec.seed}"
    return f"{slug(stem, 24)}-{slug(spec.prompt)}{seed}"


def _unique_names(specs: list[JobSpec], wheres: list[str]) -> list[JobSpec]:
    """Every job gets a distinct name (its run folder): explicit names must not repeat, automatic
    ones get -2, -3, ... on a clash."""
    taken: set[str] = set()
    out = []
    for spec, where in zip(specs, wheres):
        if spec.name:
            name = slug(spec.name, 80)
            if name in taken:
                raise _fail(f"{where} field name", f"{spec.name!r} is used by another job; names must be unique")
        else:
            base = name = _auto_name(spec)
            counter = 2
            while name in taken:
                name, counter = f"{base}-{counter}", counter + 1
        taken.add(name)
        out.append(dataclasses.replace(spec, name=name))
    return out


def jobs_from_mapping(data: Any, base: Path, source: str = "manifest") -> list[JobSpec]:
    """Jobs of a YAML-shaped manifest (``defaults``, ``jobs``, ``grid``); relative mesh paths are
    looked up next to ``base`` first, then in the working folder."""
    data = _as_mapping(data, source)
    _check_keys(data, MANIFEST_KEYS, source)
    defaults = _as_mapping(data.get("defaults"), f"{source} defaults")
    _check_keys(defaults, [k for k in JOB_KEYS if k != "name"], f"{source} defaults")
    entries: list[tuple[dict, str]] = []
    listed = data.get("jobs") or []
    if not isinstance(listed, list):
        raise _fail(f"{source} jobs", "expected a list of jobs")
    for i, entry in enumerate(listed):
        entries.append((_as_mapping(entry, f"{source} job {i + 1}"), f"{source} job {i + 1}"))
    if data.get("grid") is not None:
        grid = _as_mapping(data["grid"], f"{source} grid")
        entries += [(e, f"{source} grid job {i + 1}") for i, e in enumerate(_grid_entries(grid, f"{source} grid"))]
    if not entries:
        raise ConfigError(f"{source} lists no jobs; give 'jobs:' or 'grid:'")
    wheres = [where if "name" not in entry else f"{where} ({entry['name']})" for entry, where in entries]
    specs = [_job(entry, defaults, base, where) for (entry, _), where in zip(entries, wheres)]
    return _unique_names(specs, wheres)


def _csv_jobs(text: str) -> dict:
    """CSV columns are job keys (mesh, prompt, seed, ...); ``set`` holds KEY=VALUE;KEY=VALUE."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        entry: dict[str, Any] = {}
        for key, value in row.items():
            if key is None or value is None or value.strip() == "":
                continue
            key = key.strip()
            if key == "set":
                entry[key] = [item for item in value.split(";") if item.strip()]
            elif key == "negatives":
                entry[key] = [item.strip() for item in value.split(";") if item.strip()]
            else:
                entry[key] = yaml.safe_load(value) if key in ("seed", "iters") else value.strip()
        rows.append(entry)
    return {"jobs": rows}


def load_manifest(path: str | Path) -> list[JobSpec]:
    """Jobs of a YAML (.yaml/.yml) or CSV (.csv) manifest file; ConfigError in one line otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"manifest not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read manifest {path}: {exc}") from None
    if path.suffix.lower() == ".csv":
        data = _csv_jobs(text)
    elif path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot read manifest {path}: {str(exc).splitlines()[0]}") from None
    else:
        raise ConfigError(f"manifest {path} must be .yaml, .yml or .csv")
    return jobs_from_mapping(data, path.resolve().parent, path.name)
