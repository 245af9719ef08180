"""Figures are written as SVG and PNG; every figure in the book is named, cited and downloadable."""

import re
from pathlib import Path

import pandas as pd
import pytest

from prunerob import charts, figures

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_save_figure_writes_svg_and_png(tmp_path):
    paths = figures.save_figure(charts.placeholder("a test figure"), "fig-test", tmp_path)
    assert paths["svg"].read_text().lstrip().startswith("<svg")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(p.stat().st_size > 500 for p in paths.values())
    assert not list(tmp_path.glob("*.tmp"))


def test_save_figure_renders_an_eps_selector_chart(tmp_path):
    frame = pd.DataFrame(
        {
            "structure": "unstructured",
            "scope": "global",
            "criterion": "magnitude",
            "prune_dense_neurons": False,
            "cr": [1.0, 2.0, 1.0, 2.0],
            "eps": [0.5, 0.5, 1.0, 1.0],
            "norm": "L2",
            "robust_acc": [0.8, 0.7, 0.4, 0.3],
        }
    )
    paths = figures.save_figure(charts.robust_vs_cr_by_eps(frame), "fig-selector", tmp_path)
    assert paths["svg"].stat().st_size > 1000


def test_figure_names_are_checked(tmp_path):
    with pytest.raises(ValueError):
        figures.save_figure(charts.placeholder("x"), "../escape", tmp_path)


def test_every_book_figure_is_cited_and_links_its_files():
    chapters = {p.name: p.read_text() for p in BOOK.glob("*.md")}
    text = "\n".join(chapters.values())
    figures_seen = 0
    for name, source in chapters.items():
        for block in re.finditer(r"```\{glue:figure\} (\S+)\n:name: (\S+)\n(.*?)```", source, re.S):
            key, label, caption = block.groups()
            figures_seen += 1
            assert f"{{numref}}`{label}`" in text, f"{name}: figure {label} is never cited with numref"
            assert figures.download_links(key) in caption, f"{name}: caption of {label} lacks its SVG/PNG links"
    assert figures_seen >= 10


def test_a_figure_menu_offers_only_what_works_offline_and_saves_under_the_figure_name():
    chart = charts.placeholder("a test figure").properties(usermeta={"embedOptions": {"renderer": "canvas"}})
    menu = figures.offline_menu(chart, "fig-robust-linf").to_dict()["usermeta"]["embedOptions"]
    assert menu["downloadFileName"] == "fig-robust-linf"
    assert menu["actions"] == {"export": True, "source": False, "compiled": False, "editor": False}
    assert menu["renderer"] == "canvas"  # a chart's own embed options are kept
    html = figures.offline_menu(charts.placeholder("x"), "fig-x").to_html()
    assert '"downloadFileName": "fig-x"' in html and '"editor": false' in html
