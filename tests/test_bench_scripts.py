"""The benchmark scripts can run as ``python bench/NAME.py``."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_no_bench_script_shadows_a_standard_module():
    # ``python bench/x.py`` puts bench/ first on sys.path: a bench/copy.py would
    # replace the standard library's copy module for every import in that process
    shadowing = [p.name for p in BENCH.glob("*.py") if p.stem in sys.stdlib_module_names]
    assert shadowing == []
