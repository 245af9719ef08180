"""Study profiles: the YAML files of ``prunerob/profiles/`` and the stages they expand to.

A profile (``prunerob/profiles/<name>.yaml``) lists grid entries of flat stage parameters; a list
value is an axis of the grid (``crs`` and ``eps`` are list-valued parameters, not axes), and
``attacks`` lists the attacks to run on every checkpoint (``on_crs``: only on these; ``source_cr``:
crafted on the checkpoint at that CR, a transfer attack).  Expansion gives train, prune and attack
stages (attack after prune after train), every one built, so validated, before anything runs.
:func:`select` narrows them to a slice (``--only``), and :func:`profile_results` reads a table's
rows of a profile's stages (what the book's chapters show).  No torch.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import yaml

from prunerob import results
from prunerob.spec import AttackStage, PruneStage, SpecError, invalid

PROFILES_DIR = Path(__file__).parent / "profiles"
LIST_PARAMS = {"crs", "eps", "on_crs"}


PROFILE_KEYS = ("description", "grid")
ENTRY_KEYS = ("attacks",)  # a grid entry's keys besides the prune stage's parameters
ATTACK_KEYS = ("on_crs",)  # an attack entry's keys besides the attack stage's own parameters


def profiles_dir() -> Path:
    """``$PRUNEROB_PROFILES`` (a folder of profiles, e.g. a test's) or the package's."""
    env = os.environ.get("PRUNEROB_PROFILES")
    return Path(env) if env else PROFILES_DIR


def profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def profile_path(name: str) -> Path:
    """A profile's file: a name in the profiles folder, or a path to a YAML file."""
    if name.endswith((".yaml", ".yml")) and Path(name).exists():
        return Path(name)
    path = profiles_dir() / f"{name}.yaml"
    if not path.exists():
        raise invalid("--profile", name, profiles(), why="is not a profile")
    return path


def load_profile(name: str) -> dict[str, Any]:
    """A profile's YAML, its top-level form checked (its stages are checked by :func:`expand`):
    an empty or broken file, or a misspelt key, fails naming the file (and line) and the valid keys."""
    path = profile_path(name)
    try:
        profile = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise SpecError(f"profile {where}: not valid YAML ({problem})") from None
    if profile is None:
        raise SpecError(
            f"profile {path}: the file is empty; a profile is a mapping with keys "
            f"{', '.join(PROFILE_KEYS)} (grid: a list of stage parameter sets)"
        )
    if not isinstance(profile, dict):
        raise SpecError(
            f"profile {path}: a profile is a mapping with keys {', '.join(PROFILE_KEYS)}, "
            f"not a {type(profile).__name__}"
        )
    unknown = sorted(set(profile) - set(PROFILE_KEYS))
    if unknown:
        raise SpecError(
            f"profile {path}: unknown key(s) {', '.join(map(str, unknown))}; valid: {', '.join(PROFILE_KEYS)}"
        )
    grid = profile.get("grid")
    if not isinstance(grid, list) or not grid or not all(isinstance(e, dict) for e in grid):
        raise invalid(
            f"profile {path}: grid",
            grid,
            why="must be a non-empty list of stage parameter sets "
            "(mappings, e.g. {dataset: mnist, arch: cnn, crs: [1, 2, 4]})",
        )
    return profile


def _axes(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """All combinations of the list-valued entries (the grid's axes)."""
    keys = list(entry)
    values = [v if isinstance(v, list) and k not in LIST_PARAMS else [v] for k, v in entry.items()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def expand(profile: dict[str, Any]) -> list:
    """The profile's stages, each once, upstream stages first; a bad entry fails naming it (every
    stage is built, so validated, here: before anything runs)."""
    stages: dict[str, Any] = {}
    for i, entry in enumerate(profile["grid"], 1):
        try:
            _expand_entry(entry, stages)
        except SpecError as exc:
            raise SpecError(f"grid entry {i}: {exc}") from None
    order = {"train": 0, "prune": 1, "attack": 2}
    return sorted(stages.values(), key=lambda s: order[s.kind])


def _expand_entry(entry: dict[str, Any], stages: dict[str, Any]) -> None:
    entry = dict(entry)
    attacks = entry.pop("attacks", [])
    if not isinstance(attacks, list) or not all(isinstance(a, dict) for a in attacks):
        raise invalid("attacks", attacks, why="must be a list of attack entries (mappings, e.g. {attack: linf_pgd})")
    for params in _axes(entry):
        prune_stage = PruneStage.from_params(**params)
        stages.setdefault(prune_stage.upstream.id, prune_stage.upstream)
        stages.setdefault(prune_stage.id, prune_stage)
        for j, attack in enumerate(attacks, 1):
            attack = dict(attack)
            on_crs = attack.pop("on_crs", None)  # attack only these checkpoints (default: every CR)
            if on_crs is not None and not isinstance(on_crs, list):
                raise invalid(f"attack entry {j}: on_crs", on_crs, why="must be a list, e.g. [1, 4]")
            own = set(AttackStage.param_names()) - set(PruneStage.param_names())
            unknown = sorted(set(attack) - own)
            if unknown:
                raise SpecError(
                    f"attack entry {j}: unknown key(s) {', '.join(map(str, unknown))}; valid: "
                    f"{', '.join(sorted(own | set(ATTACK_KEYS)))}"
                )
            for attack_params in _axes(attack):
                for cr in on_crs or prune_stage.prune.crs:
                    if cr == attack_params.get("source_cr"):
                        continue  # transfer from a model to itself is the white-box attack
                    try:
                        stage = AttackStage.from_params(**params, **attack_params, cr=cr)
                    except SpecError as exc:
                        raise SpecError(f"attack entry {j}: {exc}") from None
                    _add_attack(stages, stage)


def _add_attack(stages: dict[str, Any], stage: AttackStage) -> None:
    """Add an attack stage; a minimal attack listed again with another budget grid (its id leaves the
    grid out: one run gives every budget) becomes one stage whose grid is the union of both."""
    known = stages.get(stage.id)
    if known is None:
        stages[stage.id] = stage
    elif known.attack.eps != stage.attack.eps:
        grid = sorted({*map(float, known.attack.eps), *map(float, stage.attack.eps)})
        stages[stage.id] = AttackStage.from_params(**{**stage.params(), "eps": grid})


def select(all_stages: list, only: dict[str, Any]) -> list:
    """The stages whose parameters have every value in ``only`` (e.g. ``{"arch": "mlp"}``), with the
    upstream stages they need; ``kind`` (train, prune, attack) selects by stage kind.  An unknown
    parameter name or a value no stage has is an error."""
    if not only:
        return all_stages

    rows = [{"kind": s.kind, **s.params()} for s in all_stages]  # once: a stage's params is a walk
    names = {name for row in rows for name in row}
    for name, value in only.items():
        if name not in names:
            raise SpecError(f"--only {name}=...: unknown parameter; valid: {', '.join(sorted(names))}")
        if not any(name in row and row[name] == value for row in rows):
            seen = sorted({str(row[name]) for row in rows if name in row})
            raise SpecError(f"--only {name}={value!r}: no stage of the profile has it; values there: {', '.join(seen)}")
    keep: dict[str, Any] = {}
    for s, row in zip(all_stages, rows):
        if all(name in row and row[name] == value for name, value in only.items()):
            up = s
            while up is not None:
                keep.setdefault(up.id, up)
                up = getattr(up, "upstream", None)
    return [s for s in all_stages if s.id in keep]


def book_profile() -> str:
    """The profile whose results the book shows: ``$PRUNEROB_PROFILE`` or the default, ``cpu``."""
    return os.environ.get("PRUNEROB_PROFILE", "cpu")


# The profile the transfer and adversarial-training chapters read (both trainings share its
# fine-tuning budget); its tables are committed beside the book profile's.
COMPANION_PROFILE = "full"


def book_profiles() -> tuple[str, ...]:
    """Every profile the book reads: its own (``$PRUNEROB_PROFILE``) and the companion profile."""
    return tuple(dict.fromkeys((book_profile(), COMPANION_PROFILE)))


def profile_results(table: str, profile: str | tuple[str, ...] | None = None, only: dict[str, Any] | None = None):
    """The rows of ``table`` that belong to the stages of ``profile`` (default: the book's), or of
    any of several profiles; with ``only`` (as in :func:`select`, e.g. ``{"arch": "resnet8",
    "max_epochs": 3}``), of the stages with those parameters and the stages upstream of them."""
    names = (profile,) if isinstance(profile, str) else (profile or (book_profile(),))
    ids = {s.id for name in names for s in select(expand(load_profile(name)), only or {})}
    frame = results.collect(table)
    return frame[frame["stage_id"].isin(ids)].reset_index(drop=True) if len(frame) else frame
