"""The built book works offline: charts draw, math typesets, nothing is fetched off-host.

Builds the whole book on the smoke study's tables (conftest.smoke_book) with jupyter-book, then
opens every chapter and a sample of the run pages in headless Chromium (the other run pages are
read as HTML). Run with: pytest -m browser
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prunerob import browser

ROOT = Path(__file__).resolve().parents[1]
INTRO = "book/intro.html"
SLICE = "book/linf_slice.html"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def html_dir(smoke_book) -> Path:
    if not Path(browser.CHROMIUM).exists():
        pytest.fail(f"no Chromium at {browser.CHROMIUM}: install Debian's chromium (make system-deps)")
    return smoke_book


@pytest.fixture(scope="module")
def reports(html_dir) -> dict[str, browser.PageReport]:
    # every chapter opened; of the ~900 executed stage notebooks, a sample spread over each kind is
    # opened and the others read as HTML, as `python -m prunerob.browser` (CI) does: opening each
    # took most of the browser tests' half hour
    found = browser.check_book(html_dir, runs=browser.RUN_SAMPLE)
    return {report.page: report for report in found}


def test_every_page_loads_without_errors(reports):
    assert INTRO in reports
    for report in reports.values():
        assert report.status == 200, report.page
        assert report.console_errors == [], report.page
        assert report.page_errors == [], report.page
        assert report.failed_requests == [], report.page


def test_no_request_leaves_localhost(reports):
    for report in reports.values():
        assert report.external_requests == [], report.page


def test_charts_draw_their_marks(reports):
    page = reports[SLICE]
    assert page.n_charts >= 1
    for chart in page.charts:
        assert chart.error is None
        assert chart.renderer in ("svg", "canvas")
        assert chart.marks > 0


def test_math_is_typeset(reports):
    intro = reports[INTRO]
    assert intro.math_elements >= 1
    assert intro.math_typeset == intro.math_elements
    assert intro.math_errors == []


def test_every_page_passes_the_cli_check(reports):
    assert all(report.ok for report in reports.values()), [
        (report.page, report.problems()) for report in reports.values() if not report.ok
    ]


# The opacity of each drawn data mark, in document order.
MARK_OPACITIES_JS = """() => Array.from(document.querySelectorAll(
    '.vega-embed svg.marks g.role-mark path')).map(p =>
        [p.getAttribute('opacity'), p.getAttribute('stroke-opacity'),
         p.getAttribute('fill-opacity')].join('/'))"""


def test_tooltip_and_legend_selection_respond(html_dir):
    with browser.serve_directory(html_dir) as base, browser.launch_chromium() as chromium:
        report = browser.PageReport(page=SLICE, url=base + SLICE)
        page = browser.open_page(chromium, report.url, report)
        browser.wait_until_drawn(page)
        # Mouse moves, not locator actions: vega paths are tiny and tooltips need real hovering.
        chart = page.locator(".vega-embed").first  # the page's first figure, scrolled into view
        chart.scroll_into_view_if_needed()
        points = chart.locator("svg.marks g.mark-symbol.role-mark path")
        box = points.nth(points.count() // 2).bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        tooltip = page.locator("#vg-tooltip-element")
        tooltip.wait_for(state="visible", timeout=10_000)
        assert "accuracy" in tooltip.inner_text()
        page.mouse.move(0, 0)
        before = page.evaluate(MARK_OPACITIES_JS)
        assert before, "no data marks found"
        label = chart.locator("svg.marks g.role-legend-label text").first.bounding_box()
        page.mouse.click(label["x"] + label["width"] / 2, label["y"] + label["height"] / 2)
        page.wait_for_function(
            f"before => JSON.stringify(({MARK_OPACITIES_JS})()) !== JSON.stringify(before)", arg=before, timeout=10_000
        )
        after = page.evaluate(MARK_OPACITIES_JS)
        assert len(set(after)) > 1, "the picked line should stand out from the others"
        page.close()
        assert report.page_errors == [] and report.external_requests == []


SCENARIOS = "book/scenarios.html"


def test_epsilon_dropdown_redraws_the_chart(html_dir):
    """The epsilon selector under a chart (scenarios, sweet spots, robustness) filters its data."""
    with browser.serve_directory(html_dir) as base, browser.launch_chromium() as chromium:
        report = browser.PageReport(page=SCENARIOS, url=base + SCENARIOS)
        page = browser.open_page(chromium, report.url, report)
        browser.wait_until_drawn(page)
        chart = page.locator(".vega-embed").filter(has=page.locator("select")).first
        select = chart.locator("select").first
        options = select.locator("option").all_inner_texts()
        assert len(options) >= 2, "the smoke study attacks at two budgets at least"
        current = select.input_value()
        other = next(o for o in options if o != current)
        before = chart.locator("svg.marks").first.inner_html()
        select.select_option(other)
        page.wait_for_function(
            "([el, before]) => el.innerHTML !== before",
            arg=[chart.locator("svg.marks").first.element_handle(), before],
            timeout=10_000,
        )
        page.close()
        assert report.page_errors == [] and report.external_requests == []


def test_a_figures_run_link_opens_the_run_index_filtered_to_its_runs(html_dir):
    """Every figure caption links its runs; following the link shows the run index with the
    figure's words in the filter and only the rows that have them."""
    with browser.serve_directory(html_dir) as base, browser.launch_chromium() as chromium:
        report = browser.PageReport(page=SLICE, url=base + SLICE)
        page = browser.open_page(chromium, report.url, report)
        link = page.locator("figure a[href^='runs_index.html#q=']").first
        words = link.get_attribute("href").split("#q=", 1)[1].replace("+", " ")
        assert "Its runs:" in page.locator("figure").first.inner_text()
        link.click()
        page.wait_for_url("**/runs_index.html#q=*")
        box = page.locator("#run-filter")
        assert box.input_value() == words
        rows = page.locator("#run-index tbody tr")
        shown = [rows.nth(i) for i in range(rows.count()) if rows.nth(i).is_visible()]
        assert 0 < len(shown) < rows.count()
        assert all(all(w in row.inner_text().lower() for w in words.lower().split()) for row in shown)
        page.close()
        assert report.page_errors == [] and report.external_requests == []
