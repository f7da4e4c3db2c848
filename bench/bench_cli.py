"""Start-up time of the ``sonic-rt`` command line: each command's wall time in a fresh process.

Baseline, in the same run: ``python -c pass`` with the same interpreter (what any Python command
pays at minimum). Each command runs as the console script does (``server.cli:main``), in a new
process, with ``SONIC_RT_HOME`` in a temporary folder; the figure is the median of ``--repeat``
runs after one unmeasured warm-up (files in the page cache). ``generate`` makes a 1 s clip of a
built-in sample saying one word: model loading and enrolment included, as a user meets them.

    python bench/bench_cli.py [--repeat 7] [--repo PATH] [--no-generate]

``--repo`` measures another checkout of the code (its folder goes first on ``PYTHONPATH``), e.g.
the commit before a change: ``git worktree add /tmp/cli-before COMMIT``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, summary

GOAL_HELP_S = 0.3

# (label, arguments of sonic-rt, its exit status); {tmp} is the run's temporary folder
COMMANDS = [
    ("--help", ["--help"], 0),
    ("--version", ["--version"], 0),
    ("enroll --help", ["enroll", "--help"], 0),
    ("preview --help", ["preview", "--help"], 0),
    ("generate --help", ["generate", "--help"], 0),
    ("serve --help", ["serve", "--help"], 0),
    ("keys --help", ["keys", "--help"], 0),
    ("keys list", ["keys", "list", "--keys", "{tmp}/keys.db"], 0),
    ("audit --help", ["audit", "--help"], 0),
    ("audit verify (no log)", ["audit", "verify", "--db", "{tmp}/missing.db"], 1),
    ("watermark detect --help", ["watermark", "detect", "--help"], 0),
    ("usage error", ["generate", "--fps", "1000"], 2),
]
GENERATE = ("generate (1 s clip)", ["generate", "sample:astronaut", "--say", "Hello.", "--duration", "1", "--pad",
                                    "-o", "{tmp}/clip.mp4", "--audit-db", "{tmp}/audit.db", "--quiet"], 0)  # fmt: skip
LAUNCH = "import sys; from server.cli import main; sys.argv[0] = 'sonic-rt'; main()"


def wall_s(argv: list[str], env: dict[str, str], repeat: int, status: int = 0) -> list[float]:
    """Wall seconds of ``repeat`` runs of ``argv``, after one unmeasured run; each must exit with ``status``."""
    out = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        run = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if i:
            out.append(time.perf_counter() - t0)
        if run.returncode != status:
            sys.exit(f"{argv[3:]} exited {run.returncode}, not {status}:\n{run.stderr}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to measure [default: this one]")
    parser.add_argument("--no-generate", action="store_true", help="leave out the cold generate (~6 s a run)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(args.repo.resolve()), "SONIC_RT_HOME": tmp}
        commands = COMMANDS if args.no_generate else [*COMMANDS, GENERATE]
        print(f"sonic-rt start-up, {args.repo.resolve()}, median of {args.repeat} fresh processes, "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")  # fmt: skip
        base = wall_s([sys.executable, "-c", "pass"], env, args.repeat)
        print(f"  {'baseline: python -c pass':26} {summary([s * 1e3 for s in base])}")
        help_s = None
        for label, cli_args, status in commands:
            repeat = max(3, args.repeat // 2) if label == GENERATE[0] else args.repeat
            argv = [sys.executable, "-c", LAUNCH, *(a.format(tmp=tmp) for a in cli_args)]
            samples = wall_s(argv, env, repeat, status)
            median = statistics.median(samples)
            help_s = median if label == "--help" else help_s
            ratio = median / statistics.median(base)
            print(f"  {label:26} {summary([s * 1e3 for s in samples])}   ratio to baseline {ratio:5.1f}x")
    print(f"goal: sonic-rt --help <= {GOAL_HELP_S} s (measured {help_s:.2f} s)")


if __name__ == "__main__":
    main()
