"""docs/compatibility.md names, for each row, the test that proves it: those tests must exist."""

from __future__ import annotations

import re

from compat_harness import HERE, REPO

DOC = REPO / "docs" / "compatibility.md"


def defined_tests() -> set[str]:
    names: set[str] = set()
    for path in HERE.glob("test_*.py"):
        names.update(re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.MULTILINE))
    return names


def test_every_test_the_compatibility_table_cites_exists() -> None:
    cited = set(re.findall(r"`(test_\w+)`", DOC.read_text()))

    assert cited, "docs/compatibility.md cites no test"
    assert cited - defined_tests() == set()
