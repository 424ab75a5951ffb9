"""Render benchmark: a site with 10,000 agents and 50 queues, rendered in full.

Prints a small table: building the model from TOML (parse + validation), rendering every file
in memory (templates + the render-time checks + the line check), and writing them atomically.
Target: the full render under 2 s.

    .venv/bin/python bench/render_bench.py [--agents N] [--queues N] [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from centralita.cmd_render import render_files
from centralita.settings import demo_text, parse_settings
from dialplan.render import write_rendered

TARGET_S = 2.0


def big_config(agents: int, queues: int) -> str:
    """The demo config with `queues` queues and `agents` agents, each in up to 3 queues."""
    text = demo_text()
    head, _, rest = text.partition("[[queues]]")
    tail = rest[rest.index("[[customer_id]]") :]
    parts = [head]
    names = ["support-ar", "support-en", "support-fr"]
    names += [f"sales-{q:02d}" for q in range(3, queues)]
    for q in range(queues):
        parts.append(
            f'[[queues]]\nname = "{names[q]}"\nid = {q + 1}\nstrategy = "random"\n'
            f"timeout_s = 10\nsurvey = {'true' if q % 2 == 0 else 'false'}\n\n"
        )
    for a in range(agents):
        ext = str(10000 + a)
        member_of = sorted({names[a % queues], names[(a * 7) % queues], names[(a * 13) % queues]})
        listed = ", ".join(f'"{m}"' for m in member_of)
        parts.append(
            f'[[agents]]\nextension = "{ext}"\nname = "Agent Número {a}"\n'
            f'queues = [{listed}]\nsecret = "bench-secret-{ext}"\n\n'
        )
    # The demo's supervisor is one of its own agents, which the bench replaces.
    parts.append(tail.replace('supervisors = ["1001"]', 'supervisors = ["10000"]'))
    return "".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    text = big_config(args.agents, args.queues)
    rows = []
    t0 = time.perf_counter()
    settings = parse_settings(text, "bench.toml", Path("."), None)
    rows.append(("load + validate TOML", time.perf_counter() - t0))

    renders = []
    files: dict[str, str] = {}
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        files = render_files(settings)
        renders.append(time.perf_counter() - t0)
    best = min(renders)
    rows.append((f"render all files (best of {args.repeat})", best))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_rendered(Path(tmp), files)
        rows.append(("write atomically (new folder)", time.perf_counter() - t0))
        t0 = time.perf_counter()
        write_rendered(Path(tmp), files)
        rows.append(("write again (all unchanged)", time.perf_counter() - t0))

    size = sum(len(t.encode("utf-8")) for t in files.values())
    lines = sum(t.count("\n") for t in files.values())
    print(f"render benchmark: {args.agents} agents, {args.queues} queues")
    print(f"output: {len(files)} files, {lines:,} lines, {size / 1e6:.1f} MB")
    print(f"{'step':<36} {'seconds':>8}")
    for label, seconds in rows:
        print(f"{label:<36} {seconds:8.3f}")
    verdict = "OK" if best < TARGET_S else "SLOWER THAN TARGET"
    print(f"target: full render under {TARGET_S:.0f} s -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
