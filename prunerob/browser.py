"""Open the built book in a real browser and check that it works offline.

For every page: the altair/vega charts drew their marks, MathJax typeset the math, the console
and the page raised no errors, no local file was missing, and no request left 127.0.0.1.
Requests to other hosts are recorded and refused, so the check gives the same answer with or
without internet.

    python -m prunerob.browser _build/html                      # exit status 1 if a page fails
    python -m prunerob.browser _build/html --screenshots /tmp/shots book/intro.html
    python -m prunerob.browser _build/html --runs all           # open every run page too

The executed stage notebooks (``book/runs/<kind>/``, hundreds of pages made from one template)
are opened as a sample, a few spread over each kind (``--runs``); every other run page is read as
HTML instead: each file it loads must exist here, and none may come from another host.

Uses playwright's sync API with the system's Chromium (``/usr/bin/chromium`` by default, or
``$PRUNEROB_CHROMIUM``); playwright's own browser downloads are not needed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import html.parser
import http.server
import json
import os
import posixpath
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

CHROMIUM = os.environ.get("PRUNEROB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOST = "127.0.0.1"
# Pages that are Sphinx machinery, not content.
SKIPPED_PAGES = {"search.html", "genindex.html", "py-modindex.html"}
SKIPPED_DIRS = {"_static", "_sources", "_images", "_downloads"}
# The executed stage notebooks: opened as a sample (see sample_pages), the rest read as HTML.
RUN_PAGES = "book/runs/"
RUN_SAMPLE = 9

# Every altair chart is a div#altair-viz-*; vega-embed adds class "vega-embed" to its target.
CHARTS_JS = "Array.from(new Set(document.querySelectorAll('div[id^=\"altair-viz-\"], .vega-embed')))"

CHARTS_SETTLED_JS = f"""() => {CHARTS_JS}.every(
    el => el.querySelector('svg.marks, canvas.marks, .error'))"""

MATH_SETTLED_JS = """() => {
    const math = document.querySelectorAll('.math');
    if (math.length === 0) return true;
    if (!(window.MathJax && MathJax.startup && MathJax.startup.document)) return false;
    return Array.from(math).every(el => el.querySelector('mjx-container'));
}"""

# One record per chart. For SVG: the items inside data-mark groups (role "mark"; axes, legends
# and titles have other roles). For canvas: pixels that are neither transparent nor white.
CHART_INFO_JS = f"""() => {CHARTS_JS}.map((el, index) => {{
    const svg = el.querySelector('svg.marks');
    const canvas = el.querySelector('canvas.marks');
    const error = el.querySelector('.error');
    let renderer = 'none', marks = 0;
    if (svg) {{
        renderer = 'svg';
        marks = Array.from(svg.querySelectorAll('g.role-mark > *')).filter(
            item => item.tagName !== 'g' || item.childElementCount > 0).length;
    }} else if (canvas && canvas.width > 0 && canvas.height > 0) {{
        renderer = 'canvas';
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 0; i < data.length; i += 4) {{
            if (data[i + 3] > 0 && (data[i] < 250 || data[i + 1] < 250 || data[i + 2] < 250)) marks++;
        }}
    }}
    return {{index, id: el.id || '', renderer, marks,
             error: error ? error.textContent.trim().slice(0, 500) : null}};
}})"""

MATH_INFO_JS = """() => ({
    math: document.querySelectorAll('.math').length,
    typeset: Array.from(document.querySelectorAll('.math')).filter(
        el => el.querySelector('mjx-container')).length,
    errors: Array.from(document.querySelectorAll('mjx-merror')).map(el => el.textContent),
})"""


@dataclass
class ChartReport:
    index: int
    id: str
    renderer: str  # "svg", "canvas" or "none"
    marks: int  # SVG: items in data-mark groups; canvas: non-blank pixels
    error: str | None = None  # the text of altair's red error box, if any

    @property
    def ok(self) -> bool:
        return self.renderer != "none" and self.marks > 0 and self.error is None


@dataclass
class PageReport:
    page: str  # relative to the html folder, e.g. "book/intro.html"
    url: str
    status: int | None = None
    charts: list[ChartReport] = field(default_factory=list)
    math_elements: int = 0
    math_typeset: int = 0
    math_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)  # local ones: 404s, aborts
    screenshot: str | None = None
    opened: bool = True  # False: read as HTML only (a run page outside the sample)

    @property
    def n_charts(self) -> int:
        return len(self.charts)

    @property
    def math_ok(self) -> bool:
        return self.math_typeset == self.math_elements and not self.math_errors

    def problems(self) -> list[str]:
        found = []
        if self.status is None or self.status >= 400:
            found.append(f"HTTP status {self.status}")
        found += [
            f"chart {c.index} ({c.id or 'no id'}): {c.renderer}, {c.marks} marks"
            + (f", error: {c.error}" if c.error else "")
            for c in self.charts
            if not c.ok
        ]
        if not self.math_ok:
            found.append(
                f"math: {self.math_typeset}/{self.math_elements} typeset"
                + (f", errors: {self.math_errors}" if self.math_errors else "")
            )
        found += [f"console error: {m}" for m in self.console_errors]
        found += [f"page error: {m}" for m in self.page_errors]
        found += [f"external request: {u}" for u in self.external_requests]
        found += [f"failed request: {u}" for u in self.failed_requests]
        return found

    @property
    def ok(self) -> bool:
        return not self.problems()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 at a free port, in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL_HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def launch_chromium(executable: str = CHROMIUM):
    """A headless Chromium from the system (playwright sync API); yields the browser."""
    from playwright.sync_api import sync_playwright

    if not Path(executable).exists():
        raise FileNotFoundError(f"no Chromium at {executable} (set PRUNEROB_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def is_local(url: str) -> bool:
    """True for URLs that stay on this machine's server or need no network at all."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "javascript"):
        return True
    return parts.hostname == LOCAL_HOST


def find_pages(html_dir: Path) -> list[str]:
    """Every content page of a built book, relative to ``html_dir`` (redirect stubs skipped)."""
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if (
            rel.parts[0] in SKIPPED_DIRS
            or rel.as_posix() in SKIPPED_PAGES
            or any(part.startswith(".") for part in rel.parts)
        ):
            continue
        head = path.read_text(encoding="utf-8", errors="replace")[:2000].lower()
        if 'http-equiv="refresh"' in head:  # e.g. the root index.html of jupyter-book
            continue
        pages.append(rel.as_posix())
    return pages


def sample_pages(pages: list[str], runs: int | None = RUN_SAMPLE) -> tuple[list[str], list[str]]:
    """``(opened, read)``: every page outside ``book/runs/`` is opened; of the run pages, ``runs``
    in all (None: every one), spread evenly over each kind's folder in name order from its first to
    its last, at least one per kind; the others are only read as HTML (:func:`scan_page`)."""
    if runs is None:
        return list(pages), []
    kinds: dict[str, list[str]] = {}
    for page in pages:
        if page.startswith(RUN_PAGES):
            kinds.setdefault(posixpath.dirname(page), []).append(page)
    chosen = set()
    for group in kinds.values():
        take = min(len(group), max(1, runs // len(kinds)))
        chosen |= {group[round(i * (len(group) - 1) / max(1, take - 1))] for i in range(take)}
    opened = [p for p in pages if not p.startswith(RUN_PAGES) or p in chosen]
    return opened, [p for p in pages if p.startswith(RUN_PAGES) and p not in chosen]


class _Resources(html.parser.HTMLParser):
    """The URLs a page loads by itself: scripts, images, frames, media, stylesheets and icons."""

    LOADED = {
        "script": "src",
        "img": "src",
        "iframe": "src",
        "embed": "src",
        "source": "src",
        "audio": "src",
        "video": "src",
    }

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link" and values.get("href"):
            rel = (values.get("rel") or "").lower().split()
            if {"stylesheet", "icon", "preload", "modulepreload"} & set(rel):
                self.urls.append(values["href"] or "")
        elif tag in self.LOADED and values.get(self.LOADED[tag]):
            self.urls.append(values[self.LOADED[tag]] or "")


def scan_page(html_dir: Path, page: str, base: str = f"http://{LOCAL_HOST}/") -> PageReport:
    """Read ``page`` as HTML, without a browser: a file it loads that is not in ``html_dir`` is a
    failed request, one from another host an external request."""
    report = PageReport(page=page, url=base + page, opened=False)
    path = Path(html_dir) / page
    if not path.is_file():
        report.failed_requests.append(f"missing page {page}")
        return report
    parser = _Resources()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    report.status = 200
    for url in parser.urls:
        absolute = urljoin(report.url, url)
        if not is_local(absolute):
            report.external_requests.append(absolute)
        elif urlsplit(absolute).scheme.startswith("http"):
            target = Path(html_dir) / unquote(urlsplit(absolute).path).lstrip("/")
            if not target.is_file():
                report.failed_requests.append(f"missing {absolute}")
    return report


def open_page(browser, url: str, report: PageReport, timeout_ms: int = 30_000):
    """Open ``url`` in a new page that records what ``report`` needs; returns the page."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    def route(route_) -> None:
        if is_local(route_.request.url):
            route_.continue_()
        else:  # refuse: the book must not need it, and the check must not wait on it
            report.external_requests.append(route_.request.url)
            route_.abort("blockedbyclient")

    def on_console(message) -> None:
        if message.type == "error":
            text = message.text
            # Chromium logs each request we refused above; it is reported once, as a request.
            if "ERR_BLOCKED_BY_CLIENT" not in text:
                report.console_errors.append(text)

    def on_response(response) -> None:
        if response.status >= 400 and is_local(response.url):
            report.failed_requests.append(f"{response.status} {response.url}")

    def on_request_failed(request) -> None:
        if is_local(request.url):
            report.failed_requests.append(f"{request.failure} {request.url}")

    page.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda error: report.page_errors.append(str(error)))
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    page.on("websocket", lambda ws: report.external_requests.append(ws.url) if not is_local(ws.url) else None)
    response = page.goto(url, wait_until="load", timeout=timeout_ms)
    report.status = response.status if response else None
    return page


def wait_until_drawn(page, timeout_ms: int = 30_000) -> None:
    """Wait until charts are drawn (or show their error box) and math is typeset."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for condition in (CHARTS_SETTLED_JS, MATH_SETTLED_JS):
        with contextlib.suppress(PlaywrightTimeout):  # a timeout shows up in the report
            page.wait_for_function(condition, timeout=timeout_ms)
    page.evaluate("() => document.fonts.ready.then(() => true)")
    page.wait_for_timeout(200)  # let vega finish its last asynchronous render pass


def inspect_page(page, report: PageReport) -> None:
    report.charts = [ChartReport(**info) for info in page.evaluate(CHART_INFO_JS)]
    math = page.evaluate(MATH_INFO_JS)
    report.math_elements = math["math"]
    report.math_typeset = math["typeset"]
    report.math_errors = math["errors"]


def screenshot_name(page_path: str) -> str:
    return page_path.replace("/", "__").removesuffix(".html") + ".png"


def check_book(
    html_dir: Path,
    pages: list[str] | None = None,
    screenshots: Path | None = None,
    timeout_ms: int = 30_000,
    runs: int | None = None,
) -> list[PageReport]:
    """Open each page of the built book in Chromium and report what works and what does not;
    with ``runs``, only that many run pages are opened and the others read (:func:`sample_pages`)."""
    html_dir = Path(html_dir).resolve()
    if not html_dir.is_dir():
        raise FileNotFoundError(f"no built book at {html_dir}")
    pages, read = sample_pages(find_pages(html_dir) if pages is None else list(pages), runs)
    if screenshots is not None:
        screenshots = Path(screenshots)
        screenshots.mkdir(parents=True, exist_ok=True)
    reports = []
    with serve_directory(html_dir) as base, launch_chromium() as browser:
        for page_path in pages:
            report = PageReport(page=page_path, url=base + page_path)
            try:
                page = open_page(browser, report.url, report, timeout_ms)
                try:
                    wait_until_drawn(page, timeout_ms)
                    inspect_page(page, report)
                    if screenshots is not None:
                        target = screenshots / screenshot_name(page_path)
                        page.screenshot(path=str(target), full_page=True)
                        report.screenshot = str(target)
                finally:
                    page.close()
            except Exception as error:  # noqa: BLE001 - one broken page must not hide the rest
                report.page_errors.append(f"{type(error).__name__}: {error}")
            reports.append(report)
    return reports + [scan_page(html_dir, page) for page in read]


def format_report(report: PageReport) -> str:
    marks = ", ".join(f"{c.renderer}:{c.marks}" for c in report.charts) or "-"
    if not report.opened:
        line = f"{'ok  ' if report.ok else 'FAIL'} {report.page}: read as HTML, {len(report.external_requests)} external requests"
        return "\n".join([line] + [f"     - {p}" for p in report.problems()])
    line = (
        f"{'ok  ' if report.ok else 'FAIL'} {report.page}: {report.n_charts} charts ({marks}), "
        f"math {report.math_typeset}/{report.math_elements}, "
        f"{len(report.external_requests)} external requests"
    )
    return "\n".join([line] + [f"     - {p}" for p in report.problems()])


def _run_count(text: str) -> int | None:
    if text == "all":
        return None
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"--runs {text!r}: give a whole number >= 0 or 'all'")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prunerob.browser",
        description="Check a built book in Chromium: charts, math, errors, requests off-host.",
    )
    parser.add_argument("html_dir", type=Path, help="the built book, e.g. _build/html")
    parser.add_argument("pages", nargs="*", help="pages relative to html_dir (default: every content page)")
    parser.add_argument("--screenshots", type=Path, metavar="DIR", help="write a full-page PNG of each page here")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per step")
    parser.add_argument(
        "--runs",
        type=_run_count,
        default=RUN_SAMPLE,
        help=f"run pages (book/runs/) to open, spread over each kind; the others are read as HTML (default {RUN_SAMPLE}; 'all')",
    )
    args = parser.parse_args(argv)
    reports = check_book(
        args.html_dir, args.pages or None, args.screenshots, int(args.timeout * 1000), None if args.pages else args.runs
    )
    if args.json:
        print(json.dumps([asdict(r) | {"ok": r.ok, "problems": r.problems()} for r in reports], indent=2))
    else:
        for report in reports:
            print(format_report(report))
        failed = sum(not r.ok for r in reports)
        read = sum(not r.opened for r in reports)
        print(
            f"{len(reports) - failed}/{len(reports)} pages ok ({len(reports) - read} opened in Chromium, {read} read as HTML)"
        )
    return 0 if reports and all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
