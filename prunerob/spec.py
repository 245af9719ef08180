"""Typed, frozen parameter sets for every stage of the study, their validation and their hash.

A stage's identity is the hash of its *canonical* parameters: only fields that differ from their
defaults, sorted, as JSON. Adding a new field with a default therefore keeps every old hash (and so
every finished result) valid.  Run-time settings that do not change a result (device, progress
bars, folders) are not part of any spec.

Every stage is also expressible as a flat dict of scalar parameters: the `parameters` cell of its
papermill notebook.  ``from_params`` is the one entry point that turns such a dict into a stage,
raising one clear error for an unknown name or a bad value.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from prunerob import catalog
from prunerob.catalog import ARCHS, CRITERIA, DATASETS, SCOPES, STRUCTURES, ZOO_PREFIX, SpecError, invalid

# The names of data sets, architectures, pruning methods and attacks are the catalog's (catalog.py);
# the registries in data.py, models.py and attacks.py are keyed by exactly these (tests check it).
SCHEDULES = ("cumulative", "oneshot")
# "pgd": PGD adversarial training (Madry et al. 2018) in Linf, also used for fine-tuning after pruning.
TRAININGS = ("standard", "pgd")
FINETUNE_TRAININGS = ("same", "standard")
# What an attack receives as the model's output: its logits (sound), or its softmax handed over as if
# it were logits, the way the original's Foolbox wrapper attacked its models (for the replica only).
ATTACK_OUTPUTS = ("logits", "softmax")
DEFAULT_CRS = (1, 2, 4, 8, 16, 32, 64)
# The original's Linf PGD grid for the MNIST CNN, as fractions of the [0, 1] range.
PAPER_LINF_EPS = tuple(e / 255 for e in (2, 4, 8, 16, 32))
# Each norm's default budget grid (an attack's ``eps`` left at its default takes its norm's): L0 in
# pixels changed, L2 and Linf in [0, 1] pixel units.  AttackSpec.eps's *field* default stays
# PAPER_LINF_EPS, since stage ids hash only the fields that differ from it.
NORM_DEFAULT_EPS = {"Linf": PAPER_LINF_EPS, "L2": (0.5, 1.0, 1.5, 2.0, 2.5, 3.0), "L0": (1, 2, 4, 8, 12, 16, 24, 32)}
DEVICES = "auto, cpu, cuda, cuda:N"


def _choice(name: str, value: Any, valid: tuple) -> None:
    if value not in valid:
        raise invalid(name, value, valid)


def _list(name: str, value: Any, example: str) -> None:
    if not isinstance(value, (tuple, list)):
        raise invalid(name, value, why=f"must be a list, e.g. {example}")


def check_device(name: Any) -> str:
    """A device the study can run on: auto (CUDA when present), cpu, cuda, or cuda:N that exists."""
    if not isinstance(name, str) or not (
        name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())
    ):
        raise invalid("device", name, DEVICES)
    if name.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise invalid("device", name, "auto, cpu", why="asks for CUDA, but torch sees no CUDA device here")
        if name != "cuda" and int(name[5:]) >= count:
            raise invalid(
                "device",
                name,
                ["auto", "cpu", "cuda", *(f"cuda:{i}" for i in range(count))],
                why=f"does not exist (this machine has {count} CUDA device(s))",
            )
    return name


def _positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise SpecError(f"{name}={value!r} must be {'an integer' if integer else 'a number'}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise SpecError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


def _canonical(value: Any) -> Any:
    """JSON-stable form: tuples become lists; integral floats become ints (so CR 2 and 2.0 hash alike)."""
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class _Spec:
    """Base: validation hook, non-default fields, flat parameters."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):  # papermill and YAML give lists; specs hold tuples (hashable)
                object.__setattr__(self, f.name, tuple(v))
        self.validate()

    def validate(self) -> None:  # overridden
        pass

    def non_default(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:  # every spec field has a default
                raise TypeError(f"{type(self).__name__}.{f.name} has no default")
            v = getattr(self, f.name)
            if _canonical(v) != _canonical(default):
                out[f.name] = _canonical(v)
        return out

    def params(self) -> dict[str, Any]:
        return {f.name: _canonical(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class DataSpec(_Spec):
    """Which data set, and how it is split.

    The original held out the last 10 % of the training split for validation (Keras'
    ``validation_split``); ``n_train`` subsamples the remaining training images, ``n_eval`` the
    validation and test images (smoke runs and tests only: clean accuracy is then on ``n_eval``
    test images, and an attack's ``n_samples`` may not exceed it).
    """

    dataset: str = "mnist"
    val_fraction: float = 0.1
    n_train: int = 0  # 0: all
    n_eval: int = 0  # 0: all; N: the first N validation and the first N test images

    def validate(self) -> None:
        _choice("dataset", self.dataset, tuple(DATASETS))
        _positive("val_fraction", self.val_fraction)
        if not self.val_fraction < 1:
            raise SpecError(f"val_fraction={self.val_fraction!r} must be < 1")
        _positive("n_train", self.n_train, integer=True, allow_zero=True)
        _positive("n_eval", self.n_eval, integer=True, allow_zero=True)
        test_size = DATASETS[self.dataset].test_size
        if self.n_eval > test_size:
            raise invalid("n_eval", self.n_eval, f"0 .. {test_size}", why=f"{self.dataset} has fewer test images")


@dataclass(frozen=True)
class ModelSpec(_Spec):
    """One of the study's architectures, trained by the train stage, or a RobustBench model-zoo
    entry ``rb:<threat model>:<zoo name>`` (e.g. ``rb:Linf:Carmon2019Unlabeled``), whose train stage
    loads the zoo's weights instead; the stage checks the name against the zoo for its data set."""

    arch: str = "cnn"

    def validate(self) -> None:
        if isinstance(self.arch, str) and self.arch.startswith(ZOO_PREFIX):
            catalog.parse_zoo_arch(self.arch)  # the form and the threat model; the name needs the data set
        else:
            _choice("arch", self.arch, (*ARCHS, f"{ZOO_PREFIX}<threat model>:<RobustBench zoo name>"))


@dataclass(frozen=True)
class TrainSpec(_Spec):
    """The original's recipe: Adam, early stopping on validation loss.

    ``patience`` 0 means the data set's default (5 for MNIST-size data, 15 with ReduceLROnPlateau
    for CIFAR-10 and Imagenette).

    ``training="pgd"``: PGD adversarial training (Madry et al. 2018): every training batch is
    replaced by its Linf PGD adversarial examples (radius ``adv_eps`` in [0, 1] pixel units,
    ``adv_steps`` steps of ``adv_step_size``, 0 meaning Madry's 2.5 * eps / steps, from a random
    start); early stopping watches the loss on PGD examples of the validation split (robust
    early stopping, Rice et al. 2020).  The ``adv_*`` fields belong to PGD training only.
    """

    seed: int = 0
    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 0
    training: str = "standard"
    adv_eps: float = 0.0
    adv_steps: int = 10
    adv_step_size: float = 0.0

    def validate(self) -> None:
        _positive("seed", self.seed, integer=True, allow_zero=True)
        _positive("lr", self.lr)
        _positive("batch_size", self.batch_size, integer=True)
        _positive("max_epochs", self.max_epochs, integer=True)
        _positive("patience", self.patience, integer=True, allow_zero=True)
        _choice("training", self.training, TRAININGS)
        _positive("adv_eps", self.adv_eps, allow_zero=True)
        _positive("adv_steps", self.adv_steps, integer=True)
        _positive("adv_step_size", self.adv_step_size, allow_zero=True)
        if self.training == "pgd":
            if not 0 < self.adv_eps <= 1:
                raise SpecError(
                    f"adv_eps={self.adv_eps!r} must be in (0, 1] for training='pgd' "
                    "(the Linf radius in [0, 1] pixel units, e.g. 0.3 for MNIST)"
                )
        elif (self.adv_eps, self.adv_steps, self.adv_step_size) != (0.0, 10, 0.0):
            raise SpecError(
                f"adv_eps, adv_steps and adv_step_size apply to training='pgd' only, not "
                f"training={self.training!r}; valid trainings: {', '.join(TRAININGS)}"
            )

    @property
    def adversarial(self) -> bool:
        return self.training == "pgd"

    @property
    def step_size(self) -> float:
        """The PGD step: ``adv_step_size`` or Madry's 2.5 * eps / steps."""
        return self.adv_step_size or 2.5 * self.adv_eps / self.adv_steps


@dataclass(frozen=True)
class PruneSpec(_Spec):
    """One pruning method and its compression schedule (CR = 1 / kept fraction of prunable weights)."""

    structure: str = "unstructured"
    scope: str = "global"
    criterion: str = "magnitude"
    crs: tuple = DEFAULT_CRS
    schedule: str = "cumulative"
    finetune_max_epochs: int = 30
    prune_dense_neurons: bool = False
    # "same": fine-tune as the dense model was trained (adversarially for training="pgd");
    # "standard": plain fine-tuning whatever the dense model's training
    finetune_training: str = "same"

    def validate(self) -> None:
        _choice("structure", self.structure, STRUCTURES)
        _choice("scope", self.scope, SCOPES)
        _choice("criterion", self.criterion, CRITERIA)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("finetune_training", self.finetune_training, FINETUNE_TRAININGS)
        _positive("finetune_max_epochs", self.finetune_max_epochs, integer=True, allow_zero=True)
        if not isinstance(self.prune_dense_neurons, bool):
            raise SpecError(f"prune_dense_neurons={self.prune_dense_neurons!r} must be true or false")
        _list("crs", self.crs, "[1, 2, 4]")
        if not self.crs:
            raise SpecError("crs must list at least one compression rate, e.g. [1, 2, 4]")
        for cr in self.crs:
            _positive("crs entry", cr)
            if cr < 1:
                raise SpecError(f"crs entry {cr!r} must be >= 1 (CR 1 is the dense model)")
        if list(self.crs) != sorted(set(self.crs)):
            raise SpecError(f"crs={list(self.crs)!r} must be strictly increasing")


@dataclass(frozen=True)
class AttackSpec(_Spec):
    """One attack run on one checkpoint, on the first ``n_samples`` test images."""

    attack: str = "linf_pgd"
    preset: str = ""  # empty: the attack's first preset (for the original's attacks, its settings)
    eps: tuple = PAPER_LINF_EPS
    n_samples: int = 1000
    attack_batch_size: int = 500
    attack_seed: int = 0
    attack_output: str = "logits"

    def __post_init__(self) -> None:
        # eps left at its field default takes the attack's norm's grid (the Linf grid for Linf
        # attacks: their ids are unchanged, as an eps equal to the field default is not hashed)
        if (
            isinstance(self.eps, (list, tuple))
            and self.attack in catalog.ATTACKS
            and _canonical(self.eps) == _canonical(PAPER_LINF_EPS)
        ):
            info = catalog.ATTACKS[self.attack]  # up to what the attack searches (l0_onepixel: 1 pixel)
            object.__setattr__(self, "eps", info.within(NORM_DEFAULT_EPS[info.norm]))
        super().__post_init__()

    def validate(self) -> None:
        info = catalog.attack(self.attack)  # raises listing valid names
        if self.preset:
            _choice(f"preset (for {self.attack})", self.preset, tuple(info.presets))
        grid = "[" + ", ".join(f"{e:.4g}" for e in NORM_DEFAULT_EPS[info.norm]) + "]"
        _list("eps", self.eps, grid)
        if not self.eps:
            raise SpecError("eps must list at least one attack strength")
        for e in self.eps:
            _positive("eps entry", e, allow_zero=True)
        if list(self.eps) != sorted(set(self.eps)):
            raise SpecError(f"eps={list(self.eps)!r} must be strictly increasing")
        # 0 (the clean accuracy, always measured) can only be the first of an increasing grid
        budgets = [e for e in self.eps if e != 0]
        example = f"e.g. {grid}"
        if info.norm == "L0" and not all(float(e).is_integer() for e in budgets):
            raise invalid(
                "eps",
                list(self.eps),
                why=f"is not valid for {self.attack}, an L0 attack: its budgets "
                f"are numbers of pixels changed, positive integers, {example}",
            )
        if info.max_budget is not None and any(e > info.max_budget for e in budgets):
            raise invalid(
                "eps",
                list(self.eps),
                why=f"is not valid for {self.attack}: it searches budgets up to {info.max_budget:g} "
                f"(e.g. [{info.max_budget:g}])",
            )
        if info.norm == "Linf" and any(e > 1 for e in budgets):
            raise invalid(
                "eps",
                list(self.eps),
                why=f"is not valid for {self.attack}, an Linf attack: its budgets "
                f"are in (0, 1] (pixel values in [0, 1]; 8/255 = {8 / 255:.4f}), {example}",
            )
        _positive("n_samples", self.n_samples, integer=True)
        _positive("attack_batch_size", self.attack_batch_size, integer=True)
        _positive("attack_seed", self.attack_seed, integer=True, allow_zero=True)
        _choice("attack_output", self.attack_output, ATTACK_OUTPUTS)

    @property
    def preset_name(self) -> str:
        return self.preset or next(iter(catalog.attack(self.attack).presets))

    @property
    def preset_params(self) -> dict[str, Any]:
        return catalog.attack(self.attack).presets[self.preset_name]


def _digest(kind: str, parts: dict[str, dict[str, Any]]) -> str:
    payload = {"stage": kind, **{k: v for k, v in parts.items() if v}}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _Stage:
    """A stage = named parts (specs); flat parameters map one-to-one onto the parts' fields."""

    kind: ClassVar[str]
    PARTS: ClassVar[dict[str, type]]

    def __post_init__(self) -> None:
        # The one check that needs two parts: a zoo model exists per data set.
        stage: Any = self  # the subclasses declare the parts (data, model, ...) as their fields
        if "model" in self.PARTS and stage.model.arch.startswith(ZOO_PREFIX):
            from prunerob import zoo

            zoo.check(stage.model.arch, stage.data.dataset)

    @property
    def parts(self) -> dict[str, _Spec]:
        return {name: getattr(self, name) for name in self.PARTS}

    def params(self) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for part in self.parts.values():
            flat.update(part.params())
        return flat

    def canonical(self) -> dict[str, dict[str, Any]]:
        return {name: part.non_default() for name, part in self.parts.items()}

    @functools.cached_property
    def id(self) -> str:  # frozen: computed once (a paper-size grid asks for ids many times)
        return f"{self.kind}-{_digest(self.kind, self.canonical())}"

    @classmethod
    def param_names(cls) -> list[str]:
        return [f.name for spec in cls.PARTS.values() for f in fields(spec)]

    @classmethod
    def from_params(cls, **params: Any):
        """Build the stage from flat parameters; unknown names or bad values raise SpecError."""
        valid = cls.param_names()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise SpecError(
                f"unknown parameter(s) for the {cls.kind} stage: {', '.join(unknown)}; valid: {', '.join(valid)}"
            )
        kwargs = {}
        for name, spec in cls.PARTS.items():
            own = {f.name for f in fields(spec)}
            try:
                kwargs[name] = spec(**{k: v for k, v in params.items() if k in own})
            except TypeError as exc:  # e.g. a value of the wrong type reaching a comparison
                raise SpecError(f"invalid {name} parameters: {exc}") from None
        return cls(**kwargs)


@dataclass(frozen=True)
class TrainStage(_Stage):
    """Train one dense model: data set x architecture x seed."""

    kind: ClassVar[str] = "train"
    PARTS: ClassVar[dict[str, type]] = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec}
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)


@dataclass(frozen=True)
class PruneStage(_Stage):
    """Prune one trained model with one method over its CR schedule, fine-tuning after each step."""

    kind: ClassVar[str] = "prune"
    PARTS: ClassVar[dict[str, type]] = {**TrainStage.PARTS, "prune": PruneSpec}
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    prune: PruneSpec = field(default_factory=PruneSpec)

    @property
    def upstream(self) -> TrainStage:
        return TrainStage(data=self.data, model=self.model, train=self.train)


@dataclass(frozen=True)
class CheckpointSpec(_Spec):
    """Which checkpoint of a prune stage an attack runs on, and (transfer) which one crafts it.

    ``source_cr`` 0: white-box, the attack is run on the attacked model itself.  Otherwise the
    adversarial examples are crafted on the checkpoint at ``source_cr`` of the same prune stage and
    evaluated on the one at ``cr`` (an attacker who only has the other model).
    """

    cr: float = 1
    source_cr: float = 0

    def validate(self) -> None:
        _positive("cr", self.cr)
        _positive("source_cr", self.source_cr, allow_zero=True)


@dataclass(frozen=True)
class AttackStage(_Stage):
    """Run one attack on one checkpoint (one CR of one prune stage)."""

    kind: ClassVar[str] = "attack"
    PARTS: ClassVar[dict[str, type]] = {**PruneStage.PARTS, "checkpoint": CheckpointSpec, "attack": AttackSpec}
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    prune: PruneSpec = field(default_factory=PruneSpec)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    attack: AttackSpec = field(default_factory=AttackSpec)

    def __post_init__(self) -> None:
        super().__post_init__()
        size = self.data.n_eval or DATASETS[self.data.dataset].test_size
        if self.attack.n_samples > size:
            raise invalid(
                "n_samples",
                self.attack.n_samples,
                f"1 .. {size}",
                why=f"exceeds the {size} test images of {self.data.dataset}"
                + (f" (n_eval={self.data.n_eval})" if self.data.n_eval else ""),
            )
        if self.checkpoint.cr not in self.prune.crs:
            raise SpecError(
                f"cr={self.checkpoint.cr!r} is not in the prune schedule; valid: {', '.join(map(str, self.prune.crs))}"
            )
        source = self.checkpoint.source_cr
        if source and (source not in self.prune.crs or source == self.checkpoint.cr):
            others = [c for c in self.prune.crs if c != self.checkpoint.cr]
            raise SpecError(
                f"source_cr={source!r} is not valid for cr={self.checkpoint.cr!r}; valid: 0 (white-box) or "
                f"another CR of the prune schedule: {', '.join(map(str, others))}"
            )

    def canonical(self) -> dict[str, dict[str, Any]]:
        """As every stage's, except that a minimal attack's budget grid is left out: its one run gives
        each sample's minimal distance, from which any budget's robust accuracy follows, so the grid
        is a report setting (a budget added later is computed from the run's samples, not run again;
        ``plan.regrid``)."""
        out = super().canonical()
        if catalog.attack(self.attack.attack).kind == "minimal":
            out["attack"] = {k: v for k, v in out["attack"].items() if k != "eps"}
        return out

    @property
    def transfer(self) -> bool:
        return bool(self.checkpoint.source_cr)

    @property
    def upstream(self) -> PruneStage:
        return PruneStage(data=self.data, model=self.model, train=self.train, prune=self.prune)


STAGES: dict[str, type[_Stage]] = {"train": TrainStage, "prune": PruneStage, "attack": AttackStage}


def stage_from_params(kind: str, params: dict[str, Any]) -> _Stage:
    if kind not in STAGES:
        raise SpecError(f"unknown stage {kind!r}; valid: {', '.join(STAGES)}")
    return STAGES[kind].from_params(**params)
