"""Guard overhead in instructions: a count that does not move with the machine's load.

    python benchmarks/overhead_instructions.py [--model mlp] [--short 50] [--long 150] [--split]

On a shared machine the time of a 1 ms training step moves by several percent from one run to
the next, more than the guard's cost (benchmarks/overhead.py takes medians of paired rounds and
still sees +-2 %). The number of instructions the main thread executes does not: run twice, the
same script counts the same instructions to the last one. This benchmark counts them with
valgrind's callgrind (needed: `valgrind` on the PATH; nothing to install in the project) for one
model of benchmarks/overhead.py (the 1 ms MLP by default), plain and under `trainguard.watch()`,
with one thread. The MLP takes about 7 minutes on 2 cores, the larger models far longer.

Each count covers the steps after the guard's first detailed steps only (callgrind's
instrumentation is switched on there and off after them), and the figure per step is the
difference of a long and a short run divided by the difference of their steps, so that what
happens once (start-up, first calls) cancels. With the defaults that is steps 70-169 of the run,
windows at steps 100 and 150 included: the guard's steady rate. `--split` counts the guarded
runs once more with the windows switched off and divides the guard's cost between the steady-state
steps (per step) and the windows (per window, its lead-in step included); two more runs.

Instructions are not time: the guard's Python retires fewer instructions per cycle than the
matrix kernels it sits between, so its share of the time is larger than its share of the
instructions (on the MLP here, 4-7 times). Use this figure to compare two versions of the
guard; use benchmarks/overhead.py for the ratio of times.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import torch

import trainguard
import trainguard.runtime.session
from trainguard.runtime.context import FULL_STEPS, WINDOW_EVERY

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overhead  # this folder's benchmark: its models and training loop


def child(model_name: str, mode: str, steps: int) -> None:
    """Run in valgrind: warm up, then count `steps` steps (after the guard's first detailed steps,
    which are not counted)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, batch = overhead.MODELS[model_name][1]()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    overhead.train(model, batch, 5, optimizer)

    def counted() -> None:
        switch("on")
        overhead.train(model, batch, steps, optimizer)
        switch("off")

    if mode == "steady":  # no windows after the first steps: the steady state alone
        trainguard.runtime.session.WINDOW_EVERY = 10**9
    if mode == "plain":
        overhead.train(model, batch, FULL_STEPS, optimizer)
        counted()
    else:
        with trainguard.watch(echo=False):
            overhead.train(model, batch, FULL_STEPS, optimizer)
            counted()


def switch(state: str) -> None:
    subprocess.run(["callgrind_control", "--instr=" + state, str(os.getpid())], stdout=subprocess.DEVNULL, check=True)


def count(model: str, mode: str, steps: int) -> int:
    """Instructions of the main thread over `steps` counted steps."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null",
               sys.executable, __file__, "--child", model, mode, str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed ({mode}, {steps} steps):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=50, help="steps counted in the short runs")
    parser.add_argument("--long", type=int, default=150, help="steps counted in the long runs")
    parser.add_argument("--model", default="mlp", choices=sorted(overhead.MODELS))
    parser.add_argument("--split", action="store_true", help="also: the steady-state steps' cost and the windows' cost")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "MODE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("this benchmark needs valgrind (with callgrind_control) on the PATH")
    if args.long <= args.short:
        raise SystemExit("--long must be greater than --short")
    modes = ("plain", "guarded", "steady") if args.split else ("plain", "guarded")
    runs = [(mode, steps) for mode in modes for steps in (args.short, args.long)]
    print(f"counting {len(runs)} runs under callgrind (a few minutes)...", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(zip(runs, pool.map(lambda run: count(args.model, *run), runs)))
    per_step = {mode: (counts[mode, args.long] - counts[mode, args.short]) / (args.long - args.short) for mode in modes}
    first, last = FULL_STEPS + args.short, FULL_STEPS + args.long - 1
    excess = per_step["guarded"] - per_step["plain"]
    print(f"instructions per step, {args.model}, steps {first}-{last} of the run (windows included), main thread:")
    print(f"  plain    {per_step['plain']:14,.0f}")
    print(f"  guarded  {per_step['guarded']:14,.0f}   +{excess:,.0f} ({per_step['guarded'] / per_step['plain']:.4f}x)")
    if args.split:
        # The windows (and their lead-in steps) among the counted steps of the long run but not the short one.
        windows = sum(1 for step in range(first, last + 1) if step % WINDOW_EVERY == 0)
        steady = per_step["steady"] - per_step["plain"]
        print(f"  of which the steady state  +{steady:,.0f} per step")
        if windows:
            per_window = (per_step["guarded"] - per_step["steady"]) * (args.long - args.short) / windows
            print(f"  and the windows            +{per_window:,.0f} per window ({windows} counted, lead-in step included)")


if __name__ == "__main__":
    main()
