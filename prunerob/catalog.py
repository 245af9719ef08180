"""The study's names, in one place and without torch: data sets (with their static facts),
architectures, RobustBench zoo names, pruning structures, scopes and criteria, norms, and attacks
with their presets.

``spec`` validates parameters against these names, and the registries of implementations read
them: ``data.DATASETS`` adds a loader to each data set, ``models.ARCHITECTURES`` holds a constructor
per architecture, ``attacks.ATTACKS`` a run function per attack, ``zoo`` loads the zoo's models;
tests check that each registry covers exactly the names here.  This module imports the standard
library only, so that specs, profiles and the book's tables can be read without torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


class SpecError(ValueError):
    """A parameter has an unknown name or an invalid value."""


def invalid(name: str, value: Any, valid: Any = None, why: str = "is not valid") -> SpecError:
    """The one form of every bad-input error (specs, profiles, the CLI's options, the notebooks'
    parameters): ``NAME=VALUE <what is wrong>; valid: <the valid values>``, on one line."""
    text = f"{name}={value!r} {why}"
    if valid is not None:
        text += f"; valid: {valid if isinstance(valid, str) else ', '.join(map(str, valid))}"
    return SpecError(text)


# --- data sets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    large: bool  # CIFAR-size or bigger: augmentation and the longer-patience recipe
    license: str
    test_size: int  # test images (data.py's loaders give exactly these; a test checks it)


IMAGENETTE_SIZE = 224  # every Imagenette image is resized to this square

DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        "mnist", (1, 28, 28), 10, (0.1307,), (0.3081,), False, "CC BY-SA 3.0 (LeCun, Cortes, Burges)", 10000
    ),
    "fashion_mnist": Dataset("fashion_mnist", (1, 28, 28), 10, (0.2860,), (0.3530,), False, "MIT (Zalando SE)", 10000),
    "cifar10": Dataset(
        "cifar10",
        (3, 32, 32),
        10,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        True,
        "Krizhevsky 2009",
        10000,
    ),
    "imagenette": Dataset(
        "imagenette",
        (3, IMAGENETTE_SIZE, IMAGENETTE_SIZE),
        10,
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        True,
        "Apache 2.0 (fast.ai); ImageNet subset",
        3925,
    ),
}

# --- architectures ---------------------------------------------------------------------------

ARCHS = ("mlp", "cnn", "cnn_original", "resnet8", "vgg11", "resnet18")

# An arch ``rb:<threat model>:<zoo name>`` is a RobustBench model-zoo entry (see zoo.py), loaded, not trained.
ZOO_PREFIX = "rb:"
# The study's data set name -> RobustBench's (``BenchmarkDataset`` value).
ZOO_DATASETS = {"cifar10": "cifar10"}
ZOO_THREAT_MODELS = ("Linf", "L2", "corruptions")


def is_zoo_arch(arch: object) -> bool:
    return isinstance(arch, str) and arch.startswith(ZOO_PREFIX)


def parse_zoo_arch(arch: str) -> tuple[str, str]:
    """``rb:<threat model>:<zoo name>`` -> (threat model, zoo name); a malformed name raises SpecError."""
    parts = arch.split(":", 2) if is_zoo_arch(arch) else []
    if len(parts) != 3 or not parts[2]:
        raise SpecError(
            f"arch={arch!r} is not a RobustBench model; write {ZOO_PREFIX}<threat model>:<zoo name>, "
            f"e.g. {ZOO_PREFIX}Linf:Carmon2019Unlabeled"
        )
    _, threat_model, name = parts
    if threat_model not in ZOO_THREAT_MODELS:
        raise SpecError(
            f"threat model {threat_model!r} in arch={arch!r} is not valid; valid: {', '.join(ZOO_THREAT_MODELS)}"
        )
    return threat_model, name


# --- pruning methods -------------------------------------------------------------------------

STRUCTURES = ("unstructured", "kernel", "filter")
SCOPES = ("global", "local")
CRITERIA = ("magnitude", "random")

# --- norms and attacks -----------------------------------------------------------------------

NORMS = ("L0", "L2", "Linf")
# The names of a minimal attack's two convergence checks (run by ``evaluate``, read by ``plan`` and
# ``report``): the share of the checked samples whose distance twice the steps cut, and, per budget,
# the share that the run counts robust and twice the steps break
CONVERGENCE_CHECK = "converged_at_twice_the_steps"
CURVE_CHECK = "curve_holds_at_twice_the_steps"
KINDS = ("fixed", "minimal")


def eps_label(eps: float, norm: str) -> str:
    """Linf budgets read as k/255 (the convention of the literature); others as numbers."""
    if norm == "Linf" and eps > 0:
        steps = round(eps * 255, 3)
        if abs(steps - eps * 255) < 1e-6:
            return f"{steps:g}/255"
    return f"{eps:g}"


@dataclass(frozen=True)
class Attack:
    """An attack's name and what is known about it without running it; ``attacks.ATTACKS`` adds the
    function that runs it.

    * ``fixed`` attacks take an epsilon and return one candidate per sample inside that ball;
    * ``minimal`` attacks look for each sample's smallest adversarial perturbation (one run gives the
      whole curve); an ensemble runs the ``[attack, preset]`` pairs of its preset's ``components``.
    """

    name: str
    norm: str  # L0, L2 or Linf
    kind: str  # fixed or minimal
    library: str  # the python package doing the work (its version goes into every result row)
    presets: dict[str, dict[str, Any]]  # the first is the default
    description: str = ""
    reference: str = ""  # a key of book/references.bib
    params_doc: dict[str, str] = field(default_factory=dict)
    # the largest budget an attack searches (l0_onepixel: one pixel; l0_greedy: four), None: any.
    # Larger budgets are refused and the unbounded check is left out (the attack cannot reach it); a
    # minimal attack's distance is then known up to it only (inf: none found within it)
    max_budget: float | None = None

    def within(self, grid) -> tuple:
        """The budgets of ``grid`` this attack searches (all, or those up to its ``max_budget``)."""
        return tuple(grid) if self.max_budget is None else tuple(e for e in grid if e <= self.max_budget)


ATTACKS: dict[str, Attack] = {
    "linf_pgd": Attack(
        name="linf_pgd",
        norm="Linf",
        kind="fixed",
        library="torchattacks",
        presets={
            # Foolbox 3's LinfPGD defaults, which the original used: 40 steps of eps/30, random start.
            "original": {"steps": 40, "rel_stepsize": 1 / 30, "random_start": True, "restarts": 1},
            "strong": {"steps": 100, "rel_stepsize": 1 / 30, "random_start": True, "restarts": 5},
        },
        description="Projected gradient descent in the Linf ball (Madry et al. 2018)",
        reference="madry2018",
    ),
    "linf_apgd": Attack(
        name="linf_apgd",
        norm="Linf",
        kind="fixed",
        library="torchattacks",
        presets={
            "default": {"steps": 100, "n_restarts": 1, "loss": "ce"},
            "strong": {"steps": 100, "n_restarts": 5, "loss": "ce"},
        },
        description="Auto-PGD with cross-entropy loss (Croce and Hein 2020), the stronger Linf check",
        reference="croce2020",
    ),
    "l2_pgd": Attack(
        name="l2_pgd",
        norm="L2",
        kind="fixed",
        library="torchattacks",
        presets={
            # Foolbox 3's L2PGD defaults: 50 steps of 0.025 * eps, random start.
            "original": {"steps": 50, "rel_stepsize": 0.025, "random_start": True, "restarts": 1},
            "strong": {"steps": 100, "rel_stepsize": 0.05, "random_start": True, "restarts": 5},
        },
        description="Projected gradient descent in the L2 ball (Madry et al. 2018)",
        reference="madry2018",
    ),
    "l2_apgd": Attack(
        name="l2_apgd",
        norm="L2",
        kind="fixed",
        library="torchattacks",
        presets={
            "default": {"steps": 100, "n_restarts": 1, "loss": "ce"},
            "strong": {"steps": 100, "n_restarts": 5, "loss": "ce"},
        },
        description="Auto-PGD in the L2 ball with cross-entropy loss (Croce and Hein 2020), the stronger L2 check",
        reference="croce2020",
    ),
    "linf_fmn": Attack(
        name="linf_fmn",
        norm="Linf",
        kind="minimal",
        library="foolbox",
        presets={"default": {"steps": 100}, "strong": {"steps": 500}},
        description="Fast Minimum-Norm attack, Linf (Pintor et al. 2021): one run gives the whole curve",
        reference="pintor2021",
    ),
    "l2_ddn": Attack(
        name="l2_ddn",
        norm="L2",
        kind="minimal",
        library="foolbox",
        # steps1000 (l2_ensemble's DDN): on a small PGD-fine-tuned MNIST CNN (Linf 0.3, one pass over 6,000
        # images; clean 0.67), 200 images, robust accuracy at L2 0.5 / 1 / 1.5 / 2 / 2.5 / 3: default
        # .515 / .39 / .295 / .235 / .145 / .065, steps1000 .515 / .39 / .29 / .235 / .125 / .06,
        # l2_apgd .51 / .39 / .295 / .225 / .145 / .07 (8.6 times default's seconds on a loaded machine)
        presets={"default": {"steps": 100}, "strong": {"steps": 500}, "steps1000": {"steps": 1000}},
        description="Decoupled Direction and Norm attack, L2 (Rony et al. 2019)",
        reference="rony2019",
    ),
    "l2_ensemble": Attack(
        name="l2_ensemble",
        norm="L2",
        kind="minimal",
        library="foolbox",
        # fast (standard training): DDN at 100 steps. On the dense MNIST CNN (seed 0, first 200 test
        # images, one thread) robust accuracy at L2 0.5 / 1 / 1.5 / 2 / 2.5: default (DDN 1000 steps)
        # .91 / .705 / .28 / .04 / .005 in 33 s; its components at 100 steps: DDN .91 / .71 / .285 / .045
        # / .005 (4.6 s), FMN-L2 1 / .86 / .83 / .475 / .12 (4.7 s). On adversarially trained models DDN
        # needs its 1,000 steps (see l2_ddn): use default there.
        presets={
            "default": {"components": [["l2_ddn", "steps1000"], ["l2_fmn", "default"]]},
            "fast": {"components": [["l2_ddn", "default"], ["l2_fmn", "default"]]},
        },
        description="Per sample, the smallest verified L2 adversarial over DDN and FMN-L2; the samples "
        "table's source_attack names the component",
        reference="rony2019",
    ),
    "l2_fmn": Attack(
        name="l2_fmn",
        norm="L2",
        kind="minimal",
        library="foolbox",
        presets={"default": {"steps": 100}, "strong": {"steps": 500}},
        description="Fast Minimum-Norm attack, L2 (Pintor et al. 2021)",
        reference="pintor2021",
    ),
    "l2_cw": Attack(
        name="l2_cw",
        norm="L2",
        kind="minimal",
        library="foolbox",
        presets={
            # the original's settings: loose distances (large step, large initial constant)
            "original": {"binary_search_steps": 9, "steps": 5000, "stepsize": 1.0, "initial_const": 100.0},
            "fast": {"binary_search_steps": 5, "steps": 200, "stepsize": 0.01, "initial_const": 1.0},
        },
        description="Carlini-Wagner L2 attack with a binary search over its constant (Carlini and Wagner 2017)",
        reference="carlini2017",
    ),
    "l0_pgd": Attack(
        name="l0_pgd",
        norm="L0",
        kind="fixed",
        library="prunerob",
        presets={
            # step size from Croce and Hein's code (120000/255 with L1-normalized gradients); two runs of
            # 50 steps (the second from a random start) beat one of 100 at the same cost on the dense
            # MNIST CNN: robust accuracy at 4 / 8 / 12 pixels 0.81 / 0.39 / 0.06 against 0.84 / 0.42 / 0.09
            "default": {"steps": 50, "step_size": 120000 / 255, "restarts": 2, "random_start": True},
            "strong": {"steps": 100, "step_size": 120000 / 255, "restarts": 5, "random_start": True},
        },
        description="PGD in the L0 ball of changed pixels, projected onto the box (Croce and Hein 2019)",
        reference="croce2019",
    ),
    "l0_onepixel": Attack(
        name="l0_onepixel",
        norm="L0",
        kind="fixed",
        library="prunerob",
        # black and white on MNIST (the corners of the colour cube in general). On the original's CNN
        # pruned to CR 64 (global magnitude unstructured), first 1,000 test images: 50.1 % robust at one
        # pixel where l0_ensemble (steps6000) and PGD_0 left 59.2 % (benchmarks/onepixel.json)
        presets={"default": {"values": [0.0, 1.0]}},
        description="Exhaustive one-pixel search: every pixel set to every corner colour of the box, the "
        "first misclassified variant per sample; decides the budget of one pixel",
        reference="su2019",
        max_budget=1,
    ),
    "l0_greedy": Attack(
        name="l0_greedy",
        norm="L0",
        kind="minimal",
        library="prunerob",
        # the one-pixel search repeated from its smallest-margin variant, one more pixel per round, up to
        # 4 pixels: no gradients. On the original's CNN (tanh dense layers) at CR 16-64, 1,000 test images,
        # it broke up to 11.2 points more at 2 px and 6.8 at 4 px than sigma-zero, PGD_0 and the one-pixel
        # search together (benchmarks/greedy_pixels.json), on the CNN at CR 64 1.4 and 2.1 (171 s for
        # 1,000 images, one thread beside a sweep); each round costs pixels x colours forward passes per
        # image still standing
        presets={"default": {"values": [0.0, 1.0], "max_pixels": 4}},
        description="Greedy pixel search without gradients: the exhaustive one-pixel search repeated from "
        "its smallest-margin variant, one pixel more per round, up to 4 pixels (distances beyond are not "
        "searched: its curve stops at 4)",
        reference="su2019",
        max_budget=4,
    ),
    "l0_pgd_min": Attack(
        name="l0_pgd_min",
        norm="L0",
        kind="minimal",
        library="prunerob",
        # first_k 8: the search starts at 8 pixels, not 1 (the same distances in 0.56 of the model
        # calls on the dense MNIST CNN: rounds at 1 and 3 pixels fail for almost every image)
        presets={
            "default": {"steps": 50, "step_size": 120000 / 255, "restarts": 2, "random_start": True, "first_k": 8}
        },  # as l0_pgd's default
        description="PGD_0 with a per-sample search over the number of pixels (from first_k, doubling, then "
        "bisection): a minimal L0 attack as strong as PGD_0 at every budget it tried",
        reference="croce2019",
    ),
    "l0_sigma_zero": Attack(
        name="l0_sigma_zero",
        norm="L0",
        kind="minimal",
        library="prunerob",
        presets={
            # the reference code's lr, sigma, threshold and 0.01 threshold factor.  Steps measured on the
            # first 300 MNIST test images against the CNN (1 epoch) pruned to CR 8 (global magnitude
            # unstructured, not fine-tuned; clean 0.96), one CPU thread on a shared 2-core machine, robust
            # accuracy at 2 / 4 / 8 / 16 px (seconds): 100 steps .90 / .74 / .34 / .05 (8 s), 200 steps
            # .89 / .70 / .30 / .04 (17 s), 300 steps .89 / .69 / .28 / .03 (24 s), 500 steps
            # .89 / .69 / .27 / .03 (57 s), 1000 steps .89 / .67 / .23 / .02 (150 s); l0_pgd_min (default)
            # .90 / .71 / .30 / .04 (18 s).  500 steps: most of 1000's gain at 8 px for under half its
            # time (about 3 minutes for 1,000 images on one thread)
            "default": {"steps": 500, "lr": 1.0, "sigma": 1e-3, "threshold": 0.3, "threshold_factor": 0.01},
            "strong": {"steps": 2000, "lr": 1.0, "sigma": 1e-3, "threshold": 0.3, "threshold_factor": 0.01},
            # steps6000: converged on pruned models where 2,000 steps are not.  The CNN (seed 0, global
            # magnitude unstructured) at CR 64, first 300 MNIST test images, robust at 2 / 4 / 8 px:
            # 2,000 steps 78.7 / 36.3 / 4.3 %, 4,000 78.0 / 32.7 / 3.3 %, 6,000 77.7 / 30.7 / 1.7 %
            # (305 s on one thread), 8,000 78.0 / 30.3 / 1.3 %.  Cheaper routes measured there and
            # rejected: warm restarts from the best point (3 x 1,000 steps 35.7 % at 4 px), reverting
            # changed pixels greedily after 2,000 steps (36.3 %), lr 3 (36.7 %)
            "steps6000": {"steps": 6000, "lr": 1.0, "sigma": 1e-3, "threshold": 0.3, "threshold_factor": 0.01},
            # steps12000: twice 6,000 steps moved the CNN's L0 curve by up to 2 points (CR 16, 8 px;
            # bench convergence, 2026-12-05); 12,000 steps were not better at CR 64 (33.5 % robust at
            # 4 px against 33.0 %) and 24,000 moved that by 3 points: the strongest set's, not the default
            "steps12000": {"steps": 12000, "lr": 1.0, "sigma": 1e-3, "threshold": 0.3, "threshold_factor": 0.01},
        },
        description="sigma-zero (Cina et al. 2025): Adam on a smooth approximation of the number of changed "
        "pixels plus a clipped difference of logits, with an adaptive per-sample threshold that "
        "zeroes small changes; keeps the adversarial point with the fewest changed pixels",
        reference="cina2025",
    ),
    "l0_ensemble": Attack(
        name="l0_ensemble",
        norm="L0",
        kind="minimal",
        library="prunerob",
        # strong: sigma-zero at 2,000 steps. On the CNN (seed 0) pruned to CR 64, first 300 MNIST test
        # images, default read 46.3 % at 4 px where the registry's strongest L0 set read 34.0 % and
        # sigma-zero at 2,000 steps alone 36.3 % (benchmarks/attacks_l0_strongest.json)
        presets={
            "default": {"components": [["l0_sigma_zero", "default"], ["l0_pgd_min", "default"]]},
            "strong": {"components": [["l0_sigma_zero", "strong"], ["l0_pgd_min", "default"]]},
            # steps6000: sigma-zero converged (see its preset); the default set's L0 since 2026-12-04
            "steps6000": {"components": [["l0_sigma_zero", "steps6000"], ["l0_pgd_min", "default"]]},
            "steps12000": {"components": [["l0_sigma_zero", "steps12000"], ["l0_pgd_min", "default"]]},
        },
        description="Per sample, the fewest changed pixels of a verified adversarial example over sigma-zero "
        "and PGD_0 with a budget search (run second, searching only below sigma-zero's distance); "
        "the samples table's source_attack names the component",
        reference="cina2025",
    ),
    "l0_fmn": Attack(
        name="l0_fmn",
        norm="L0",
        kind="minimal",
        library="foolbox",
        presets={"default": {"steps": 100}, "strong": {"steps": 500}},
        description="Fast Minimum-Norm attack, L0 (Pintor et al. 2021)",
        reference="pintor2021",
    ),
    "l0_bb": Attack(
        name="l0_bb",
        norm="L0",
        kind="minimal",
        library="foolbox",
        presets={
            # the original's settings, started from other evaluation images (Foolbox's DatasetAttack)
            "original": {"binary_search_steps": 30, "steps": 500, "lr": 1e7, "init": "dataset"},
            "fast": {"binary_search_steps": 10, "steps": 100, "lr": 1e7, "init": "dataset"},
        },
        description="Brendel-Bethge L0 attack (Brendel et al. 2019), the original's L0 attack; needs numba",
        reference="brendel2019",
    ),
}


def attack(name: str) -> Attack:
    """The catalog entry of attack ``name``; an unknown name raises SpecError listing the valid ones."""
    if name not in ATTACKS:
        raise invalid("attack", name, ATTACKS)
    return ATTACKS[name]


def preset_fingerprints() -> dict[str, str]:
    """``attack/preset`` -> a hash of the preset's parameter values.  Attack stage ids hash the
    preset's *name*, not its values, so a preset edited in place would let old results pass for new
    ones; ``tests/presets.lock.json`` pins these fingerprints and a test fails on any change."""
    return {
        f"{name}/{preset}": hashlib.sha256(json.dumps(params, sort_keys=True, default=repr).encode()).hexdigest()[:12]
        for name, info in ATTACKS.items()
        for preset, params in info.presets.items()
    }
