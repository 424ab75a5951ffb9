"""Benchmark this tree against another commit, side by side in the same run.

    .venv/bin/python bench/compare.py                 # against HEAD~1
    .venv/bin/python bench/compare.py --rev a90c200   # against a given commit
    .venv/bin/python bench/compare.py --rev a90c200 --this c99afaf   # two commits
    make bench-compare REV=a90c200

REV is checked out into a temporary git worktree (removed at the end). Both trees are then
measured in alternating rounds (A B, B A, A B ...: each round runs both, the order flips so a
steady drift favours neither), so a burst of load on the machine hits both alike, and each
figure is the median over the rounds:

- FastAGI CPU per call: this tree's bench/agi_load.py server (the 10-command flow, with the
  app's Prometheus hooks) runs once on each tree's code, each in a process of its own; this
  process plays Asterisk for `--calls` calls at `--concurrency` per round with agi_load.py's
  load generator, and reads each server's CPU time (user + system) from /proc.
- Pop latency: this tree's `bench/pop_bench.py` (the whole app, 1,000 consoles, the fake AMI
  streaming calls) runs once per round on each tree's code (CENTRALITA_BENCH_TREE), so the
  harness is the same and only the code under test differs; its p50 and p99 (AMI read ->
  WebSocket send) come from its `--json` line.

The ratio is this tree (or --this) / REV: below 1.00 is faster. `--max-ratio` (default 1.05)
is the bound the issue asks for; the exit status is 1 when a median is over it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import agi_load  # noqa: E402  (the load generator and the CPU reading)


@dataclass
class Tree:
    """One side of the comparison: a checkout and the figures measured on it."""

    label: str
    path: Path
    cpu_per_call_us: list[float] = field(default_factory=list)
    pop_p50_ms: list[float] = field(default_factory=list)
    pop_p99_ms: list[float] = field(default_factory=list)


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """REV checked out (detached) in a temporary worktree, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="centralita-compare-") as tmp:
        path = Path(tmp) / "tree"
        git("worktree", "add", "--detach", "--quiet", str(path), rev)
        try:
            yield path
        finally:
            git("worktree", "remove", "--force", str(path))
            git("worktree", "prune")


def start_agi_server(tree: Path) -> tuple[subprocess.Popen[str], int]:
    """This tree's FastAGI bench server (bench/agi_load.py: the flow, the app's metrics hooks)
    running `tree`'s code (--code puts it first on the server's sys.path)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "agi_load.py"),
            "--serve",
            "centralita",
            "--code",
            str(tree),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"the FastAGI server on {tree} did not start: {line!r}")
    return proc, int(line.split()[1])


def measure_agi(trees: list[Tree], rounds: int, calls: int, concurrency: int) -> None:
    servers = {tree.label: start_agi_server(tree.path) for tree in trees}
    try:
        for tree in trees:  # warm up: imports, first allocations
            asyncio.run(agi_load.drive(servers[tree.label][1], min(300, calls), 50))
        for n in range(rounds):
            for tree in trees if n % 2 == 0 else trees[::-1]:
                proc, port = servers[tree.label]
                gc.collect()
                before, _ = agi_load.cpu_seconds(proc.pid)
                _, _, failures = asyncio.run(agi_load.drive(port, calls, concurrency))
                after, _ = agi_load.cpu_seconds(proc.pid)
                if failures:
                    raise RuntimeError(f"{tree.label}: {failures} FastAGI calls failed")
                tree.cpu_per_call_us.append((after - before) / calls * 1e6)
            print(
                f"  round {n + 1}: "
                + ", ".join(f"{t.label} {t.cpu_per_call_us[-1]:.0f} us" for t in trees),
                flush=True,
            )
    finally:
        for proc, _ in servers.values():
            proc.kill()
            proc.wait()


def run_pop_bench(tree: Path, extra: list[str]) -> tuple[float, float]:
    """(p50, p99) in ms from one run of this tree's bench/pop_bench.py on `tree`'s code."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pop_bench.py"), "--json", *extra],
        cwd=tree,
        env={**os.environ, "CENTRALITA_BENCH_TREE": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"bench/pop_bench.py failed on {tree} (exit {done.returncode}):\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    figures = json.loads(lines[-1])
    if Path(figures["code"]).resolve() != tree.resolve():
        raise RuntimeError(f"bench/pop_bench.py measured {figures['code']}, not {tree}")
    # The browsers may receive more than pops (agent-state messages), never fewer.
    if not figures["pops"] or figures["received"] < figures["pops"]:
        raise RuntimeError(f"bench/pop_bench.py on {tree}: pops sent/received {figures}")
    return float(figures["p50_ms"]), float(figures["p99_ms"])


def measure_pop(trees: list[Tree], rounds: int, extra: list[str]) -> None:
    for n in range(rounds):
        for tree in trees if n % 2 == 0 else trees[::-1]:
            p50, p99 = run_pop_bench(tree.path, extra)
            tree.pop_p50_ms.append(p50)
            tree.pop_p99_ms.append(p99)
        print(
            f"  round {n + 1}: "
            + ", ".join(
                f"{t.label} p50 {t.pop_p50_ms[-1]:.2f} / p99 {t.pop_p99_ms[-1]:.2f} ms"
                for t in trees
            ),
            flush=True,
        )


def report(
    head: Tree, base: Tree, rows: list[tuple[str, Callable[[Tree], list[float]], str]], bound: float
) -> bool:
    """Print the medians and the ratios; True when every ratio is within the bound."""
    ok = True
    width = max(len(name) for name, _, _ in rows)
    print(f"{'':<{width}}  {base.label:>14}  {head.label:>14}  ratio")
    for name, values, unit in rows:
        if not values(head) or not values(base):
            continue
        ours, theirs = statistics.median(values(head)), statistics.median(values(base))
        ratio = ours / theirs if theirs else float("inf")
        verdict = "ok" if ratio <= bound else f"OVER {bound:.2f}"
        ok = ok and ratio <= bound
        print(
            f"{name:<{width}}  {theirs:>11.2f} {unit:<2}  {ours:>11.2f} {unit:<2}  "
            f"{ratio:.3f} {verdict}"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD~1", help="the commit to compare with")
    parser.add_argument(
        "--this", metavar="REV", help="measure this commit instead of the working tree"
    )
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (AGI)")
    parser.add_argument("--calls", type=int, default=3000, help="FastAGI calls per round")
    parser.add_argument("--concurrency", type=int, default=100, help="FastAGI callers at once")
    parser.add_argument("--pop-rounds", type=int, default=4, help="alternating pop_bench runs")
    parser.add_argument(
        "--pop-args",
        default="--agents 1000 --rate 200 --seconds 5",
        help="arguments for each bench/pop_bench.py run",
    )
    parser.add_argument("--max-ratio", type=float, default=1.05)
    parser.add_argument("--skip-pop", action="store_true", help="only the FastAGI figure")
    args = parser.parse_args()

    agi_load.raise_fd_limit()
    rev = git("rev-parse", "--short", args.rev)
    with contextlib.ExitStack() as stack:
        if args.this:
            this_rev = git("rev-parse", "--short", args.this)
            head = Tree(this_rev, stack.enter_context(worktree(this_rev)))
            described = f"{args.this} ({this_rev})"
        else:
            head_rev = git("rev-parse", "--short", "HEAD")
            dirty = git("status", "--porcelain", "--untracked-files=no") != ""
            head = Tree(head_rev + ("+" if dirty else ""), ROOT)
            described = f"this tree ({head_rev}{' + uncommitted changes' if dirty else ''})"
        base = Tree(rev, stack.enter_context(worktree(rev)))
        trees = [base, head]
        print(f"Comparing {described} with {args.rev} ({rev})")
        print(
            f"FastAGI: {args.rounds} alternating rounds of {args.calls} calls, "
            f"{args.concurrency} at a time"
        )
        measure_agi(trees, args.rounds, args.calls, args.concurrency)
        if not args.skip_pop:
            print(
                f"Pop latency: {args.pop_rounds} alternating runs of pop_bench.py {args.pop_args}"
            )
            measure_pop(trees, args.pop_rounds, args.pop_args.split())
    print()
    print(f"Medians (ratio = {head.label} / {base.label}; bound {args.max_ratio:.2f})")
    ok = report(
        head,
        base,
        [
            ("FastAGI CPU per call", lambda t: t.cpu_per_call_us, "us"),
            ("pop latency p50", lambda t: t.pop_p50_ms, "ms"),
            ("pop latency p99", lambda t: t.pop_p99_ms, "ms"),
        ],
        args.max_ratio,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
