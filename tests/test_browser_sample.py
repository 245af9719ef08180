"""The browser check's sample of run pages and its HTML reading of the others (no browser needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunerob import browser


def _page(root: Path, rel: str, body: str = "") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><head>{body}</head><body>x</body></html>", encoding="utf-8")


@pytest.fixture
def book(tmp_path: Path) -> Path:
    _page(tmp_path, "_static/app.js")
    _page(tmp_path, "book/intro.html", '<script src="../_static/app.js"></script>')
    for i in range(12):
        _page(tmp_path, f"book/runs/attack/attack-{i:02d}.html", '<script src="../../../_static/app.js"></script>')
    for i in range(3):
        _page(tmp_path, f"book/runs/train/train-{i}.html")
    return tmp_path


def test_sample_opens_every_chapter_and_spreads_runs_over_each_kind(book):
    pages = browser.find_pages(book)
    opened, read = browser.sample_pages(pages, runs=4)
    assert "book/intro.html" in opened
    runs_opened = [p for p in opened if p.startswith(browser.RUN_PAGES)]
    assert runs_opened == [
        "book/runs/attack/attack-00.html",
        "book/runs/attack/attack-11.html",
        "book/runs/train/train-0.html",
        "book/runs/train/train-2.html",
    ]
    assert sorted(opened + read) == sorted(pages) and not set(opened) & set(read)
    assert browser.sample_pages(pages, runs=None) == (pages, [])


def test_reading_a_run_page_finds_off_host_and_missing_files(book):
    _page(
        book,
        "book/runs/attack/attack-05.html",
        '<script src="https://cdn.example.org/vega.js"></script><img src="../../../_images/gone.png">'
        '<link rel="stylesheet" href="../../../_static/app.js"><a href="https://example.org/">a link loads nothing</a>',
    )
    report = browser.scan_page(book, "book/runs/attack/attack-05.html")
    assert report.external_requests == ["https://cdn.example.org/vega.js"]
    assert len(report.failed_requests) == 1 and report.failed_requests[0].endswith("_images/gone.png")
    assert not report.ok and not report.opened
    assert browser.scan_page(book, "book/runs/attack/attack-01.html").ok


def test_cli_refuses_a_bad_run_count(book, capsys):
    with pytest.raises(SystemExit):
        browser.main([str(book), "--runs", "some"])
    assert "--runs 'some': give a whole number >= 0 or 'all'" in capsys.readouterr().err
