"""Run every benchmark: ``python -m bench`` (what ``make bench`` does), or name some.

Each sub-package of ``bench`` with a ``__main__`` module is one benchmark; it measures its own
baseline in the same run and prints ratios, because these machines are shared and noisy.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(path.parent.name for path in here.glob("*/__main__.py"))


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(available())}")
        return 2
    for name in names:
        print(f"\n=== bench.{name} ===", flush=True)
        saved = sys.argv
        sys.argv = [f"bench.{name}"]
        try:
            runpy.run_module(f"bench.{name}", run_name="__main__")
        finally:
            sys.argv = saved
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
