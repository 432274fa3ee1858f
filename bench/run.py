#!/usr/bin/env python
"""Runs the benchmarks one after another: `python bench/run.py all` or a name
(check, track, delivery, notifications, credits, webhooks; `stats` and `capacity`
only by name, with their arguments after them: `python bench/run.py capacity --events 200000`,
`python bench/run.py stats --events 1000000`). Each
benchmark prints its figures next to a floor measured in the same run; nothing
here asserts a timing."""

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ALL = ["check", "track", "delivery", "notifications", "credits", "webhooks"]
# Run only by name: they take as long as their parameters ask.
ON_DEMAND = ["stats", "capacity"]


def main(argv: list[str]) -> int:
    if argv and argv[0] in ON_DEMAND:
        print(f"\n=== bench/{argv[0]}.py ===", flush=True)
        return subprocess.call([sys.executable, str(BENCH_DIR / f"{argv[0]}.py"), *argv[1:]], cwd=BENCH_DIR.parent)
    names = ALL if not argv or argv[0] == "all" else argv
    status = 0
    for name in names:
        script = BENCH_DIR / f"{name}.py"
        if not script.exists():
            print(f"[bench] unknown benchmark {name!r}; known: {', '.join(ALL + ON_DEMAND)}", file=sys.stderr)
            status = 2
            continue
        print(f"\n=== bench/{name}.py ===", flush=True)
        status = subprocess.call([sys.executable, str(script)], cwd=BENCH_DIR.parent) or status
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
