"""The stress suite's figures: cases tried per category and the failures among them.

Runs ``tests/stress`` (pytest, on loopback) with its generated case counts multiplied by
``--scale`` (``SONIC_RT_STRESS_SCALE``; CI runs scale 1), then sums what each test recorded in
``test-artifacts/stress/tally.jsonl`` (``tests/stress/tally.py``). A failure is a bad input not
answered with its error, a crash, or a fault that harmed the server or another session; the
"audit log" row counts the sessions the suite's server had on record at the end and those left
without an end (lost), after checking the chain.

    python bench/bench_stress.py [--scale 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.stress.tally import TALLY  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=5.0, help="multiplies the generated case counts")
    ap.add_argument("pytest_args", nargs="*", help="more pytest arguments (e.g. -k audio)")
    args = ap.parse_args()
    TALLY.unlink(missing_ok=True)
    env = {**os.environ, "SONIC_RT_STRESS_SCALE": str(args.scale)}
    t0 = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/stress", "-q", "-p", "no:cacheprovider",
                          *args.pytest_args], cwd=REPO, env=env, capture_output=True, text=True)  # fmt: skip
    wall = time.monotonic() - t0
    summary = [line for line in run.stdout.splitlines() if " passed" in line or " failed" in line or "error" in line]
    print(f"pytest tests/stress at scale {args.scale:g}: exit {run.returncode} in {wall:.0f} s: "
          f"{summary[-1] if summary else run.stdout[-500:]}")  # fmt: skip
    if run.returncode != 0:
        print(run.stdout[-4000:])
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    lines = TALLY.read_text().splitlines() if TALLY.exists() else []
    for line in lines:
        entry = json.loads(line)
        totals[entry["category"]][0] += entry["cases"]
        totals[entry["category"]][1] += entry["failures"]
    width = max([len(c) for c in totals] + [8])
    print(f"\n{'category':{width}}  {'cases':>8}  {'failures':>8}")
    for category in sorted(totals):
        cases, failures = totals[category]
        print(f"{category:{width}}  {cases:8d}  {failures:8d}")
    cases = sum(c for c, _ in totals.values())
    failures = sum(f for _, f in totals.values())
    print(f"{'all':{width}}  {cases:8d}  {failures:8d}   (failure rate {failures / max(cases, 1):.2%})")


if __name__ == "__main__":
    main()
