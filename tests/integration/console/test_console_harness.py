"""The browser tests' screenshots: taken on every run, written to docs/images only by
``make screenshots``, so that a test run leaves the checkout as it found it (#12 item 11)."""

from __future__ import annotations

from typing import Any

import pytest

from . import harness


class FakePage:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def screenshot(self, **options: Any) -> bytes:
        self.calls.append(options)
        return b""


def test_a_test_run_takes_the_screenshot_but_writes_no_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(harness, "SCREENSHOTS", False)
    page = FakePage()
    harness.screenshot(page, "console-fleet.png")
    assert page.calls == [{"full_page": True}]


def test_make_screenshots_writes_docs_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "SCREENSHOTS", True)
    page = FakePage()
    harness.screenshot(page, "console-fleet.png")
    assert page.calls == [{"path": str(harness.IMAGES / "console-fleet.png"), "full_page": True}]


def test_make_screenshots_sets_the_switch() -> None:
    makefile = (harness.REPO / "Makefile").read_text()
    assert "FERMION_SCREENSHOTS=1" in makefile.split("screenshots:", 1)[1].split("\n\n", 1)[0]
