"""Every figure of the book also as SVG and PNG files, for citing and for slides.

``save_figure(chart, name)`` writes ``<name>.svg`` and ``<name>.png`` (rendered by vl-convert,
offline) into :func:`figures_dir` (``book/_figures`` unless ``$PRUNEROB_FIGURES`` says otherwise).
Chapters call it beside ``glue`` (:func:`glue_figure` does both), and each figure's caption links
the files with Sphinx's download role, which copies them into the built HTML:

    ```{glue:figure} fig-x
    :name: fig-x

    Caption. Download: {download}`SVG <_figures/fig-x.svg>`, {download}`PNG <_figures/fig-x.png>`.
    ```

The files are written while the chapter executes, i.e. before Sphinx resolves the links, so a
figure whose files are missing fails the ``-W`` build.  Interactive controls (an epsilon
dropdown, a legend selection) show their initial state in the static files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import altair as alt

from prunerob import results

PNG_SCALE = 2  # twice the on-screen size: sharp on slides and high-density screens
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def figures_dir() -> Path:
    return Path(os.environ.get("PRUNEROB_FIGURES", results.ROOT / "book" / "_figures"))


def save_figure(chart: alt.TopLevelMixin, name: str, folder: Path | None = None) -> dict[str, Path]:
    """Write ``name``.svg and ``name``.png; returns their paths by format."""
    if not _NAME.match(name):
        raise ValueError(f"figure name {name!r}: use letters, digits, '-', '_' and '.' only")
    folder = Path(folder) if folder is not None else figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"svg": folder / f"{name}.svg", "png": folder / f"{name}.png"}
    for fmt, path in paths.items():
        tmp = path.with_name(path.name + ".tmp")
        # altair hands the spec to vl-convert (no browser, no network)
        if fmt == "png":
            chart.save(str(tmp), format="png", scale_factor=PNG_SCALE)
        else:
            chart.save(str(tmp), format="svg")
        tmp.replace(path)
    return paths


def offline_menu(chart: alt.TopLevelMixin, name: str) -> alt.TopLevelMixin:
    """The chart's "..." menu as it works offline: "Save as SVG/PNG", saving ``name``.svg/.png;
    no "View Source", "View Compiled Vega" or "Open in Vega Editor" (the editor is a web site)."""
    usermeta = getattr(chart, "usermeta", None)
    meta = usermeta if isinstance(usermeta, dict) else {}
    options = {
        **meta.get("embedOptions", {}),
        "downloadFileName": name,
        "actions": {"export": True, "source": False, "compiled": False, "editor": False},
    }
    return chart.properties(usermeta={**meta, "embedOptions": options})


def glue_figure(name: str, chart: alt.TopLevelMixin, folder: Path | None = None) -> alt.TopLevelMixin:
    """Glue ``chart`` under ``name`` for a ``{glue:figure}`` and write its SVG and PNG; its menu
    offers only what works offline and names the saved file after the figure."""
    from myst_nb import glue

    chart = offline_menu(chart, name)
    save_figure(chart, name, folder)
    glue(name, chart, display=False)
    return chart


def download_links(name: str) -> str:
    """The caption text that links a figure's files (the form every caption in the book uses)."""
    return f"{{download}}`SVG <_figures/{name}.svg>`, {{download}}`PNG <_figures/{name}.png>`"
