"""A stand-in ``autoattack`` module so that ``import robustbench`` works without AutoAttack.

``robustbench/__init__.py`` imports ``robustbench.eval``, which imports ``AutoAttack`` from
``autoattack`` and ``EvaluationState`` from ``autoattack.state`` at import time.  The package that
provides them (fra31/auto-attack) is not on PyPI; PyPI's ``pyautoattack`` installs under another name
with another API.  prunerob only needs RobustBench's model zoo (architectures and
``robustbench.utils.load_model``), never ``robustbench.eval.benchmark``, so :func:`install` puts a
stub into ``sys.modules`` -- only when no real ``autoattack`` can be imported.  The stub does not
attack anything: using either name raises :class:`AutoAttackMissing`.
"""

from __future__ import annotations

import importlib.util
import sys
import types

STUB_ATTRIBUTE = "__prunerob_stub__"
ADVICE = (
    "the real AutoAttack is not installed; prunerob put a stub in its place so that RobustBench's "
    "model zoo can be imported. robustbench.eval.benchmark and AutoAttack need the real package: "
    "pip install git+https://github.com/fra31/auto-attack"
)


class AutoAttackMissing(RuntimeError):
    """Raised when the stand-in AutoAttack (or EvaluationState) is used."""


class _Unavailable:
    def __init__(self, *args, **kwargs) -> None:
        raise AutoAttackMissing(f"{type(self).__name__}: {ADVICE}")

    @classmethod
    def from_disk(cls, *args, **kwargs):  # robustbench.eval resumes AutoAttack runs with this
        raise AutoAttackMissing(f"{cls.__name__}.from_disk: {ADVICE}")


class AutoAttack(_Unavailable):
    """Stand-in for ``autoattack.AutoAttack``: constructing it raises :class:`AutoAttackMissing`."""


class EvaluationState(_Unavailable):
    """Stand-in for ``autoattack.state.EvaluationState``: using it raises :class:`AutoAttackMissing`."""


def is_stub(module: types.ModuleType | None = None) -> bool:
    """Whether ``module`` (default: ``sys.modules['autoattack']``) is this stub."""
    module = module if module is not None else sys.modules.get("autoattack")
    return bool(getattr(module, STUB_ATTRIBUTE, False))


def install() -> bool:
    """Put the stub into ``sys.modules`` unless a real ``autoattack`` is importable; True if it did."""
    if "autoattack" in sys.modules:
        return is_stub()
    if importlib.util.find_spec("autoattack") is not None:
        return False
    package = types.ModuleType("autoattack", "prunerob's stand-in for AutoAttack (see prunerob._autoattack_shim)")
    state = types.ModuleType("autoattack.state", "prunerob's stand-in for autoattack.state")
    # setattr: attributes a fresh ModuleType does not declare
    setattr(package, "AutoAttack", AutoAttack)  # noqa: B010
    setattr(package, "state", state)  # noqa: B010
    package.__path__ = []  # a package, so `import autoattack.state` resolves to the entry below
    setattr(state, "EvaluationState", EvaluationState)  # noqa: B010
    for module in (package, state):
        setattr(module, STUB_ATTRIBUTE, True)
    sys.modules["autoattack"] = package
    sys.modules["autoattack.state"] = state
    return True
