"""`make bench`: run every benchmarks/bench_*.py in turn (each prints its own ratios)."""

import runpy
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
selected = sys.argv[1:]
for path in sorted(here.glob("bench_*.py")):
    if selected and path.stem not in selected and path.stem.removeprefix("bench_") not in selected:
        continue
    print(f"\n===== {path.name} =====", flush=True)
    sys.argv = [str(path)]  # each benchmark runs with its own defaults
    runpy.run_path(str(path), run_name="__main__")
