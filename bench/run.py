#!/usr/bin/env python
"""Runs the benchmarks one after another: `python bench/run.py all` or a name
(check, track, delivery, notifications, credits, webhooks). Each benchmark prints its figures next to a floor
measured in the same run; nothing here asserts a timing."""

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ALL = ["check", "track", "delivery", "notifications", "credits", "webhooks"]


def main(argv: list[str]) -> int:
    names = ALL if not argv or argv[0] == "all" else argv
    status = 0
    for name in names:
        script = BENCH_DIR / f"{name}.py"
        if not script.exists():
            print(f"[bench] unknown benchmark {name!r}; known: {', '.join(ALL)}", file=sys.stderr)
            status = 2
            continue
        print(f"\n=== bench/{name}.py ===", flush=True)
        status = subprocess.call([sys.executable, str(script)], cwd=BENCH_DIR.parent) or status
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
