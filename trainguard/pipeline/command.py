"""`trainguard train [--config FILE.toml] --out DIR [--max-steps N] [--resume]`: the reference pipeline."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import nullcontext

from trainguard.console import make_console, print_summary
from trainguard.output_paths import check_output_folder
from trainguard.report import exit_status, summarize


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` verb to the trainguard command."""
    parser = subparsers.add_parser(
        "train",
        help="train with the reference pipeline (guarded, checkpointed, exactly resumable)",
        description="Train the task of FILE.toml (without --config: the built-in 8x8 digits) into DIR: "
        "checkpoints/, metrics.jsonl, tensorboard/ (when tensorboard is installed), final.safetensors and "
        "report.json. See docs/pipeline.md.",
    )
    parser.add_argument("--config", metavar="FILE.toml", help="the run's configuration (default: the built-in digits task)")
    parser.add_argument("--out", metavar="DIR", required=True, help="the folder that receives the run's files")
    parser.add_argument("--max-steps", type=_positive, metavar="N", help="stop after N optimizer steps in all")
    parser.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint in DIR")
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Build the configured task, fit it into --out, report; the exit status."""
    # Imported here, not at the top: torch costs ~1 s, and `trainguard --help` should not pay it.
    from trainguard.cli import UsageError
    from trainguard.pipeline.checkpoints import CheckpointError
    from trainguard.pipeline.distributed import training_device
    from trainguard.pipeline.loop import NonFiniteLossError, fit
    from trainguard.pipeline.rng_state import seed_everything
    from trainguard.pipeline.settings import ConfigError
    from trainguard.pipeline.task_config import read_config
    from trainguard.pipeline.tasks import build_task
    from trainguard.runtime.api import watch

    check_output_folder(args.out, "--out")
    try:
        # Everything is checked (config, data files, factory) before DIR is touched.
        config = read_config(args.config)
        fit_config = config.fit_config(out_dir=args.out, max_steps=args.max_steps, resume=args.resume or None,
                                       progress=None if sys.stderr.isatty() else False)
        device = training_device(fit_config.device)
        seed_everything(fit_config.seed)  # the initial weights: the same on every run of this config
        world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's: the ranks share each epoch
        task = build_task(config, lambda samples: fit_config.total_steps(samples, world), device)
        # fit() runs under the guard installed here, with the [guard] section's rules and thresholds.
        with watch(**config.guard.watch_options()) if fit_config.guard else nullcontext():
            result = fit(task.model, task.loss_fn, task.optimizer, task.train_data, task.val_data,
                         config=fit_config, scheduler=task.scheduler, metrics=task.metrics)
    except (ConfigError, CheckpointError) as error:
        raise UsageError(str(error)) from None
    except NonFiniteLossError as error:
        sys.stderr.write(f"trainguard train: {error}; see {args.out}/report.json\n")
        return 1
    console = make_console(sys.stderr)
    if result.terminated:
        console.print(f"trainguard train: stopped by SIGTERM after optimizer step {result.steps}, checkpoint saved; "
                      "continue with --resume")
        return 128 + signal.SIGTERM
    numbers = {"loss": result.last_loss, **result.validation}
    losses = "".join(f", {name} {value:.4f}" for name, value in numbers.items() if value is not None)
    console.print(f"trainguard train: {result.steps} optimizer steps{losses}; "
                  f"wrote {args.out}/final.safetensors and {args.out}/report.json")
    print_summary(console, summarize(result.findings), "the run")
    return exit_status(result.findings, "error")
