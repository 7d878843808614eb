"""A small fit() run for the resume tests, which can SIGKILL (or SIGTERM) itself at a chosen micro-batch.

    python resumable_run.py OUT --workers N --accumulation K --precision P [--compile] [--kill-at M [--signal TERM]] [--resume]

Digits (300 samples, batch 16: 19 micro-batches an epoch, so accumulation 2 or 3 leaves a partial
last window), an MLP with dropout, AdamW with a cosine schedule, validation and a checkpoint
every 2 optimizer steps. Under torchrun, fit() trains with DDP (each rank signals itself at its
own micro-batch M).
"""

from __future__ import annotations

import argparse
import os
import signal

import torch
from torch import nn

from trainguard.demo.digits import make_digits
from trainguard.pipeline import FitConfig, fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--kill-at", type=int, help="signal this process at this micro-batch (counted from 1)")
    parser.add_argument("--signal", choices=("KILL", "TERM"), default="KILL")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    config = FitConfig(out_dir=args.out, epochs=3, batch_size=16, accumulation_steps=args.accumulation,
                       precision=args.precision, clip_grad_norm=1.0, eval_every_steps=4, checkpoint_every_steps=2,
                       log_every_steps=1, num_workers=args.workers, progress=False, resume=args.resume, seed=7,
                       compile=args.compile)
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.total_steps(300, world))
    micro_batches = 0
    cross_entropy = nn.CrossEntropyLoss()

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        nonlocal micro_batches
        if torch.is_grad_enabled():
            micro_batches += 1
            if micro_batches == args.kill_at:
                os.kill(os.getpid(), getattr(signal, f"SIG{args.signal}"))
        return cross_entropy(logits, labels)

    result = fit(model, loss_fn, optimizer, make_digits(300, seed=1), make_digits(100, seed=2), config=config, scheduler=scheduler)
    if result.terminated:
        print(f"terminated after step {result.steps}")
        raise SystemExit(128 + signal.SIGTERM)


if __name__ == "__main__":
    main()
