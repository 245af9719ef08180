"""Figures are written as SVG and PNG; every figure in the book is named, cited and downloadable."""

import re
from pathlib import Path

import altair as alt
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
            assert f"{{glue:md}}`{key}-remake`" in caption, f"{name}: caption of {label} lacks its re-make commands"
    assert figures_seen >= 10


def test_a_figure_menu_offers_only_what_works_offline_and_saves_under_the_figure_name():
    chart = charts.placeholder("a test figure").properties(usermeta={"embedOptions": {"renderer": "canvas"}})
    menu = figures.offline_menu(chart, "fig-robust-linf").to_dict()["usermeta"]["embedOptions"]
    assert menu["downloadFileName"] == "fig-robust-linf"
    assert menu["actions"] == {"export": True, "source": False, "compiled": False, "editor": False}
    assert menu["renderer"] == "canvas"  # a chart's own embed options are kept
    html = figures.offline_menu(charts.placeholder("x"), "fig-x").to_html()
    assert '"downloadFileName": "fig-x"' in html and '"editor": false' in html


@pytest.mark.parametrize(
    "only",
    [
        {"kind": "attack", "dataset": "mnist", "arch": "mlp", "training": "standard"},
        {"kind": "attack", **charts.HEADLINE, "attack": "linf_pgd"},
        {"kind": "prune", "arch": "cnn", "training": "pgd (eps 0.1)"},
    ],
)
def test_a_figures_commands_re_make_its_stages_and_run_one_with_other_parameters(only):
    """The caption's sweep command selects the figure's stages (and only stages of that kind or
    upstream of them); its stage command, typed as written, is a stage of that selection; the run
    index link carries the figure's words."""
    import shlex

    from prunerob import cli, profiles, spec

    how = figures.remake([only])
    words = shlex.split(how["sweep"])
    assert words[:4] == [".venv/bin/python", "-m", "prunerob", "sweep"] and words[5] == how["profile"]
    filters = dict(cli._param(w) for w in words[7::2])
    assert filters == {k: v for k, v in how["only"].items()}
    chosen = profiles.select(profiles.expand(profiles.load_profile(how["profile"])), filters)
    assert any(s.kind == only["kind"] for s in chosen)
    stage_words = shlex.split(how["stage"].replace(" -p <name>=<value>", ""))
    kind, params = stage_words[4], dict(cli._param(w) for w in stage_words[6::2])
    assert kind == only["kind"]
    assert spec.stage_from_params(kind, params).id in {s.id for s in chosen}
    assert all(str(how["only"][k]) in how["query"].split() for k in ("dataset", "arch", "attack") if k in how["only"])
    text = figures.remake_text(how)
    assert how["sweep"] in text and how["stage"] in text and 'href="runs_index.html' in text


def test_a_figure_without_declared_parameters_takes_them_from_its_data():
    frame = pd.DataFrame(
        {
            "arch": ["mlp", "mlp"],
            "dataset": ["mnist", "mnist"],
            "seed": [0, 0],
            "cr": [1, 2],
            "robust_acc": [0.9, 0.8],
            "eps": [0.1, 0.1],
        }
    )
    chart = alt.Chart(frame).mark_line().encode(x="cr", y="robust_acc")
    assert figures.remake(figures.chart_rows(chart))["only"] == {"dataset": "mnist", "arch": "mlp", "seed": 0}


@pytest.mark.parametrize(
    "params",
    [
        {"training": "standard"},
        {"training": "pgd", "adv_eps": 0.1},
        {"training": "pgd", "adv_eps": 0.3, "finetune_training": "standard"},
    ],
)
def test_a_tables_training_label_reads_back_as_the_parameters_that_wrote_it(params):
    from prunerob.spec import PruneStage
    from prunerob.stages import training_label, training_params

    label = training_label(PruneStage.from_params(**params))
    back = training_params(label)
    assert {k: v for k, v in back.items() if k != "adv_eps"} == {
        k: v for k, v in params.items() if k != "adv_eps" and not (k == "finetune_training" and v == params["training"])
    }
    if "(eps" in label:
        assert back["adv_eps"] == params["adv_eps"]


def test_a_figure_without_data_is_glued_as_a_placeholder_that_says_what_is_missing(tmp_path, monkeypatch):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.__setitem__(name, value))
    only = {"kind": "attack", "arch": "mlp"}
    figures.glue_figure("fig-none", None, tmp_path, only=only, profile="cpu", missing="no L0 results for mlp")
    figures.glue_figure("fig-text", "no Linf results in profile cpu", tmp_path, only=only, profile="cpu")
    for name, text in (("fig-none", "no L0 results for mlp"), ("fig-text", "no Linf results in profile cpu")):
        spec = glued[name].to_dict()
        assert spec["mark"]["type"] == "text" and text in str(spec), name
        assert (tmp_path / f"{name}.svg").exists() and f"{name}-remake" in glued
    figures.glue_values({"a": 1, "b": "two"}, "sec-")
    assert glued["sec-a"] == 1 and glued["sec-b"] == "two"
    # a report section: its values and figures under one prefix, a figure without data says so
    section = {"values": {"n": 3}, "figures": {"L0": None, "Linf": charts.placeholder("drawn")}}
    figures.glue_section(section, "sec-", only=only, profile="cpu", missing="no {name} for mlp", folder=tmp_path)
    assert glued["sec-n"] == 3 and "no L0 for mlp" in str(glued["fig-sec-L0"].to_dict())
    assert "drawn" in str(glued["fig-sec-Linf"].to_dict()) and (tmp_path / "fig-sec-Linf.svg").exists()
    assert "--only arch=mlp" in str(glued["fig-sec-L0-remake"].data)


def test_every_chapter_keeps_its_analysis_in_the_package():
    """A chapter holds its selection, one call per question, its charts and its glue: about 30 lines
    of code (blank and comment lines not counted); the analysis lives in tested package functions."""
    import jupytext

    sizes = {}
    for path in sorted(BOOK.glob("*.md")):
        cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
        lines = [line.strip() for c in cells for line in c.source.splitlines()]
        sizes[path.name] = sum(1 for line in lines if line and not line.startswith("#"))
    assert len(sizes) > 10 and max(sizes.values()) > 10  # the chapters were read
    assert {name: n for name, n in sizes.items() if n > 32} == {}
