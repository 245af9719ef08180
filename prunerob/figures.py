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

import functools
import html
import os
import re
from pathlib import Path
from typing import Any

import altair as alt
from altair.utils._importers import import_vl_convert, vl_version_for_vl_convert  # what chart.save uses

from prunerob import charts, profiles, results
from prunerob.spec import SpecError

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
    # vl-convert renders the spec (no browser, no network), as altair's chart.save does; the spec is
    # built (and validated) once for both formats: building it is most of a save's time
    vlc, version = import_vl_convert(), vl_version_for_vl_convert()
    spec = chart.to_dict(context={"pre_transform": False})
    rendered = {
        "svg": vlc.vegalite_to_svg(spec, vl_version=version).encode(),
        "png": vlc.vegalite_to_png(spec, vl_version=version, scale=PNG_SCALE, ppi=72),
    }
    for fmt, path in paths.items():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(rendered[fmt])
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


def glue_figure(
    name: str,
    chart: alt.TopLevelMixin | str | None,
    folder: Path | None = None,
    only: dict[str, Any] | None = None,
    profile: str | None = None,
    missing: str = "not measured in this profile",
) -> None:
    """Glue ``chart`` under ``name`` for a ``{glue:figure}`` and write its SVG and PNG; its menu
    offers only what works offline and names the saved file after the figure.  Also glues
    ``<name>-remake`` (for ``{glue:md}`` in the caption): the commands that re-make the figure's
    runs, from ``only`` (the stage parameters it shows, as ``--only`` takes them) or else from what
    its data pins down, in ``profile`` or else the first book profile that has such stages.  A chart
    of ``None`` (no data for it) is glued as a placeholder that says ``missing``, a text as one that
    says that text."""
    from IPython.display import Markdown
    from myst_nb import glue

    if chart is None or isinstance(chart, str):
        chart = charts.placeholder(chart or missing)
    chart = offline_menu(chart, name)
    save_figure(chart, name, folder)
    glue(name, chart, display=False)
    rows = [only] if only is not None else chart_rows(chart)
    glue(f"{name}-remake", Markdown(remake_text(remake(rows, profile))), display=False)


def glue_section(
    section: dict[str, Any],
    prefix: str,
    only: dict[str, Any] | None = None,
    profile: str | None = None,
    missing: str = "no {name} results in this profile",
    folder: Path | None = None,
) -> None:
    """Glue a report section: its ``values`` under ``prefix + key`` (:func:`glue_values`) and each of
    its ``figures`` under ``fig-<prefix><name>`` (:func:`glue_figure`, with ``only`` and
    ``profile``); a figure without data says ``missing``, its ``{name}`` filled in."""
    glue_values(section.get("values", {}), prefix)
    for name, chart in section.get("figures", {}).items():
        glue_figure(f"fig-{prefix}{name}", chart, folder, only, profile, missing.format(name=name))


def glue_values(values: dict[str, Any], prefix: str = "") -> None:
    """Glue every value (text for ``{glue:}``/``{glue:md}``, numbers, tables) under ``prefix + key``,
    without displaying it: the chapters' prose numbers, computed by the report layer."""
    from myst_nb import glue

    for key, value in values.items():
        glue(f"{prefix}{key}", value, display=False)


# the stage parameters a figure's data can pin down, in the order a command names them
_PINNED = ("dataset", "arch", "training", "seed", "structure", "scope", "criterion", "attack")


def chart_rows(chart: alt.TopLevelMixin) -> list[dict]:
    """Every data row a chart draws (its inline datasets, whatever the layering)."""
    spec = chart.to_dict()
    rows: list[dict] = [r for values in spec.get("datasets", {}).values() for r in values if isinstance(r, dict)]

    def inline(node: Any) -> None:
        if isinstance(node, dict):
            values = node.get("data", {}).get("values") if isinstance(node.get("data"), dict) else None
            rows.extend(r for r in values or [] if isinstance(r, dict))
            for child in node.values():
                inline(child)
        elif isinstance(node, list):
            for child in node:
                inline(child)

    inline({k: v for k, v in spec.items() if k != "datasets"})
    return rows


def _pinned(rows: list[dict]) -> dict[str, Any]:
    """The stage parameters with one value over all of a figure's rows (``--only`` filters); a
    single row (a figure's declared parameters) keeps its other parameters too."""
    only: dict[str, Any] = {k: v for k, v in rows[0].items() if k not in _PINNED} if len(rows) == 1 else {}
    for name in _PINNED:
        values = {r[name] for r in rows if r.get(name) is not None}
        if len(values) != 1 or not all(name in r for r in rows):
            continue
        value = values.pop()
        if name == "training":  # the tables write stages.training_label: "pgd (eps 0.1)", ...
            from prunerob.stages import training_params  # torch: only where a figure is re-made

            only.update(training_params(str(value)))
            continue
        only[name] = int(value) if name == "seed" else value
    return only


@functools.cache
def _profile_stages(profile: str) -> tuple:
    return tuple(profiles.expand(profiles.load_profile(profile)))


def remake(rows: list[dict], profile: str | None = None) -> dict[str, Any]:
    """How to re-make a figure drawn from ``rows``: the book profile whose stages it shows (or
    ``profile``), the ``--only`` filters its data pins down (``only``), the sweep command, the
    command that runs one of its stages with other parameters, and the words that find its runs in
    the run index."""
    only = _pinned(rows) if rows else {}

    def stages_of(name: str) -> list:
        try:
            return profiles.select(list(_profile_stages(name)), only)
        except SpecError:  # a filter no stage of that profile has
            return []

    candidates = [profile] if profile is not None else list(profiles.book_profiles())
    profile, chosen = next(((name, found) for name in candidates if (found := stages_of(name))), (candidates[0], []))
    flags = "".join(f" --only {k}={v}" for k, v in only.items())
    kind = only.get("kind") or ("attack" if any("eps" in r for r in rows) or "attack" in only else "prune")
    example = next((st for st in chosen if st.kind == kind), chosen[-1] if chosen else None)
    explicit = {k: v for k, v in only.items() if k != "kind"}
    for part in example.canonical().values() if example else ():
        explicit.update(part)
    if example is not None and example.kind == "attack":
        explicit.setdefault("cr", example.checkpoint.cr)
    args = "".join(f" -p {k}={_arg(v)}" for k, v in explicit.items())
    return {
        "profile": profile,
        "only": only,
        "sweep": f".venv/bin/python -m prunerob sweep --profile {profile}{flags}",
        "stage": f".venv/bin/python -m prunerob stage {example.kind if example else kind}{args} -p <name>=<value>",
        "query": " ".join(str(only[k]) for k in ("dataset", "arch", "attack") if k in only),
    }


def _arg(value: Any) -> str:
    """A parameter value as ``-p name=value`` takes it (lists without spaces)."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_arg(v) for v in value) + "]"
    return str(value)


def remake_text(how: dict[str, Any]) -> str:
    """The caption sentence (markdown) that says how to re-make a figure (:func:`remake`) and links
    its runs in the run index."""
    href = "runs_index.html" + (f"#q={html.escape(how['query'].replace(' ', '+'))}" if how["query"] else "")
    return (
        f"Its runs: `{how['sweep']}` computes those missing (every one, with `PRUNEROB_RESULTS` "
        f"pointed at an empty folder), then `make book` draws it again; one run with another parameter: "
        f'`{how["stage"]}`; <a href="{href}">its runs in the run index</a>.'
    )


def download_links(name: str) -> str:
    """The caption text that links a figure's files (the form every caption in the book uses)."""
    return f"{{download}}`SVG <_figures/{name}.svg>`, {{download}}`PNG <_figures/{name}.png>`"
