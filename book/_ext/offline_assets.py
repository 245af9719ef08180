"""Serve the book's JavaScript from its own ``_static`` folder, so charts and math work offline.

What it does, at build time (nothing big is committed to git):

* writes ``_static/offline/vega-bundle.js``: vega + vega-lite + vega-embed from
  ``vl_convert.javascript_bundle()`` (the same versions altair targets), wrapped in a function
  scope because its top-level names clash with Sphinx's ``doctools.js``; it exports
  ``window.vega``, ``window.vegaLite``, ``window.vegaEmbed`` and sets ``window.VEGA_DEBUG`` to
  the versions altair's "universal" HTML template checks, so that template skips its CDN loads;
* loads that file on every page with a plain ``<script>`` in ``<head>``, i.e. before the inline
  scripts of altair's charts in the page body run;
* copies MathJax 3 (``es5/``, fonts included) from the PyPI package ``django-static-mathjax`` to
  ``_static/mathjax/`` and points ``mathjax_path`` there (unless the config names a local one).

``prunerob/browser.py`` (``python -m prunerob.browser _build/html``) proves it in a browser.

The pattern for a numbered, citable altair chart (use it for every chart in the book):

    ```{code-cell} ipython3
    :tags: [remove-cell]
    from myst_nb import glue
    from prunerob import charts          # chart builders: tidy frame -> alt.Chart
    glue("fig-acc-vs-eps", charts.some_builder(frame), display=False)
    ```

    ```{glue:figure} fig-acc-vs-eps
    :name: fig-acc-vs-eps

    Robust accuracy against attack strength. Click a legend entry to highlight a method.
    ```

    As {numref}`fig-acc-vs-eps` shows, ...

* Keep altair's default renderer (``html``): myst-nb puts its ``text/html`` output into the
  page. The ``mimetype``/``jupyter`` renderers give outputs the HTML page cannot show.
* ``glue(..., display=False)`` stores the chart in the cell's outputs; ``{glue:figure}`` pastes
  it into a numbered figure whose ``:name:`` is the target for ``{numref}``. The glue key and the
  figure name may be the same string. ``:tags: [remove-cell]`` hides the code; the glued output
  is still found. A chart glued in one page can be pasted in another as ``{glue:figure} page:key``
  (see the myst-nb docs), but keep figures in the page that computes them.
* Interactivity (tooltips, legend selections, zoom) is plain altair and works offline.
* Data are inlined in the chart spec: keep frames small (aggregate first) so pages stay light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

VEGA_BUNDLE = "offline/vega-bundle.js"  # relative to _static
MATHJAX_DIR = "mathjax"  # relative to _static
MATHJAX_COMPONENT = "tex-mml-chtml.js"  # Sphinx's default MathJax 3 component


def altair_versions() -> dict[str, str]:
    """The versions altair's HTML template compares against ``window.VEGA_DEBUG``."""
    import altair as alt

    return {
        "vega_version": alt.VEGA_VERSION,
        "vegalite_version": alt.VEGALITE_VERSION,
        "vegaembed_version": alt.VEGAEMBED_VERSION,
    }


# vega-embed draws on a canvas unless told otherwise; SVG keeps text sharp when zoomed or printed,
# and lets a browser test read the marks. A chart may still ask for
# ``.properties(usermeta={"embedOptions": {"renderer": "canvas"}})`` (many thousand points).
SVG_BY_DEFAULT = """\
var embed = window.vegaEmbed;
window.vegaEmbed = Object.assign(function (el, spec, opt) {
  return embed(el, spec, Object.assign({renderer: "svg"}, opt || {}));
}, embed);
"""


def vegalite_version_to_bundle() -> str:
    """The vega-lite version altair writes its specs for, as vl-convert names it."""
    import vl_convert as vlc

    wanted = ".".join(altair_versions()["vegalite_version"].split(".")[:2])
    available = vlc.get_vegalite_versions()
    if wanted not in available:
        # A tripwire for upgrades (a warning fails a -W build): altair and vl-convert are pinned
        # as a pair in requirements.txt.
        logger.warning(
            "offline_assets: vl-convert has no vega-lite %s (has %s); using %s",
            wanted, ", ".join(available), available[-1],
        )
        wanted = available[-1]
    return wanted


def vega_bundle_header(vl_version: str) -> str:
    """First line of the bundle; it names everything the bundle depends on (a cache key)."""
    import vl_convert as vlc

    key = {
        "vl_convert": vlc.__version__,
        "vega": vlc.get_vega_version(),
        "vega_lite": vl_version,
        "vega_embed": vlc.get_vega_embed_version(),
        "altair": altair_versions(),
        "wrapper": hashlib.sha256((WRAPPER_HEAD + SVG_BY_DEFAULT).encode()).hexdigest()[:12],
    }
    return (
        f"/* {json.dumps(key, sort_keys=True)} -- vega, vega-lite and vega-embed (BSD-3-Clause), "
        "bundled by vl-convert at book build time (book/_ext/offline_assets.py). */\n"
    )


# The bundle declares top-level const/function names (n, t, ...) that would collide with
# Sphinx's globals; a function scope keeps them private. It assigns window.vega* itself.
WRAPPER_HEAD = "(function () {\n"


def vega_bundle_source(vl_version: str, header: str) -> str:
    """vega + vega-lite + vega-embed as one classic script that only touches ``window``."""
    import vl_convert as vlc

    return (
        header
        + WRAPPER_HEAD
        + vlc.javascript_bundle(vl_version=vl_version)
        + "\n"
        + SVG_BY_DEFAULT
        + "}).call(window);\n"
        + "window.VEGA_DEBUG = Object.assign(window.VEGA_DEBUG || {}, "
        + json.dumps(altair_versions())
        + ");\n"
    )


def mathjax_source_dir() -> Path:
    """MathJax 3's ``es5`` folder, as shipped by the ``django-static-mathjax`` wheel."""
    try:
        import mathjax  # the top-level package of django-static-mathjax
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "offline_assets needs MathJax from PyPI: pip install django-static-mathjax "
            "(pinned in requirements.txt)"
        ) from err
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / MATHJAX_COMPONENT).is_file():
        raise RuntimeError(f"offline_assets: no {MATHJAX_COMPONENT} under {es5}")
    return es5


def write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def copy_mathjax(static: Path) -> None:
    """Copy MathJax's es5 tree once per MathJax version (a stamp file records it)."""
    src = mathjax_source_dir()
    package_json = src.parent / "package.json"
    version = json.loads(package_json.read_text())["version"] if package_json.is_file() else "?"
    dest = static / MATHJAX_DIR
    stamp = dest / ".offline_assets_version"
    if stamp.is_file() and stamp.read_text() == version:
        return
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    license_file = src.parent / "LICENSE"
    if license_file.is_file():
        shutil.copy2(license_file, dest / "LICENSE")
    stamp.write_text(version)
    logger.info("offline_assets: copied MathJax %s to %s", version, dest)


def use_local_mathjax(app: Sphinx, config: Config) -> None:
    path = config.mathjax_path or ""
    if not path or "://" in path or path.startswith("//"):
        config.mathjax_path = f"{MATHJAX_DIR}/{MATHJAX_COMPONENT}"


def write_assets(app: Sphinx) -> None:
    # Written before any page, so Sphinx can add a checksum (?v=...) to the script URLs.
    if app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    bundle = static / VEGA_BUNDLE
    vl_version = vegalite_version_to_bundle()
    header = vega_bundle_header(vl_version)
    # Bundling takes seconds: redo it only when something it depends on changed.
    with contextlib.suppress(OSError):
        with bundle.open(encoding="utf-8") as existing:
            if existing.readline() == header:
                header = None
    if header is not None:
        write_if_changed(bundle, vega_bundle_source(vl_version, header))
        logger.info("offline_assets: wrote %s (vega-lite %s)", VEGA_BUNDLE, vl_version)
    copy_mathjax(static)


def tidy_page_assets(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop duplicate scripts, and thebe's loader while thebe is off.

    sphinx-thebe adds its inline config (``const THEBE_JS_URL = ...``) both to Sphinx's registry
    and to the builder, so each page declared it twice: a SyntaxError on every page. With thebe
    off (it needs a remote Binder anyway) its loader only carries an unpkg.com URL, so it goes.
    """
    launch = (app.config.html_theme_options or {}).get("launch_buttons") or {}
    thebe_config = getattr(app.config, "thebe_config", None)
    thebe_on = bool(launch.get("thebe")) or (
        isinstance(thebe_config, dict) and bool(thebe_config.get("always_load")))
    seen, kept = set(), []
    for script in list(context.get("script_files", [])):
        filename = getattr(script, "filename", str(script))
        attributes = getattr(script, "attributes", {})
        body = attributes.get("body", "")
        if not thebe_on and ("THEBE_JS_URL" in body or str(filename).endswith("sphinx-thebe.js")):
            continue
        key = (str(filename or ""), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    # In place: for Sphinx this list is the builder's own, which it resets for each page.
    context["script_files"][:] = kept
    if not thebe_on:
        context["css_files"][:] = [
            css for css in context.get("css_files", [])
            if not str(getattr(css, "filename", css)).endswith("sphinx-thebe.css")
        ]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", use_local_mathjax)
    app.connect("builder-inited", write_assets)
    app.connect("html-page-context", tidy_page_assets, priority=999)  # after the others
    # A plain (neither async nor defer) script in <head>: it has run before any chart's
    # inline script in the body. Early priority: before other extensions' scripts.
    app.add_js_file(VEGA_BUNDLE, priority=100)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
