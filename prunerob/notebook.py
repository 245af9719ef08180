"""What the stage notebooks call to turn their injected parameters into a validated stage.

papermill only warns about parameters the notebook does not define, so every stage notebook
records the names that exist *before* its parameters cell, and passes everything defined after it
here: an unknown name or a bad value then fails the run with one clear error.
"""

from __future__ import annotations

import types
from typing import Any

from prunerob.spec import SpecError, check_device, stage_from_params  # noqa: F401 - SpecError: what it raises

# Run-time settings a notebook accepts besides its stage's parameters; they change no result.
RUNTIME = {"device": "auto", "progress": True}


def stage_parameters(kind: str, namespace: dict[str, Any], before: set[str]):
    """(stage, runtime settings) from a notebook's globals; raises SpecError on bad input."""
    given = {
        k: v
        for k, v in namespace.items()
        if k not in before and not k.startswith("_") and k not in ("In", "Out") and not isinstance(v, types.ModuleType)
    }
    runtime = {k: given.pop(k, default) for k, default in RUNTIME.items()}
    check_device(runtime["device"])
    if runtime["progress"]:
        _console_progress()
    return stage_from_params(kind, given), runtime


def _console_progress() -> None:
    """Progress bars as text on the kernel's stderr (which the sweep streams to its terminal), not
    notebook widgets: tqdm.auto inside a kernel would warn that ipywidgets is missing."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tqdm.auto
    import tqdm.std

    tqdm.auto.tqdm = tqdm.std.tqdm
    tqdm.auto.trange = tqdm.std.trange
