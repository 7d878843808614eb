"""`fit()`: the reference training loop, written to be read top to bottom like nanoGPT's train.py."""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, cast

import torch
from torch.utils.data import DataLoader, Dataset

from trainguard.findings import Finding
from trainguard.pipeline.atomic import sweep_stale_temporaries
from trainguard.pipeline.checkpoints import CheckpointStore, Position, apply_state, build_state
from trainguard.pipeline.data_order import batches_per_epoch, eval_loader, sample_count, train_loader
from trainguard.pipeline.distributed import Ranks, training_device
from trainguard.pipeline.metrics_log import MetricsLog
from trainguard.pipeline.outputs import export_weights, write_run_report
from trainguard.pipeline.progress import TrainingProgress
from trainguard.pipeline.rng_state import capture_rng, restore_rng, seed_everything
from trainguard.pipeline.settings import ConfigError, FitConfig
from trainguard.pipeline.termination import TerminationRequest

_AUTOCAST_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# A validation metric: (model outputs, targets) -> the batch's mean, like the loss.
Metric = Callable[[Any, Any], torch.Tensor]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN/Inf; raised before the optimizer applied that step."""

    def __init__(self, loss: float, step: int, epoch: int) -> None:
        super().__init__(f"the training loss is {loss} at optimizer step {step} (epoch {epoch}); "
                         "training stopped before applying that update")
        self.loss, self.step, self.epoch = loss, step, epoch


@dataclass
class FitResult:
    """What `fit()` did: optimizer steps taken, the last position, losses, findings, files.

    `validation` holds the last validation's numbers ("val_loss", "val_<metric>"); `best` is the
    best value of `config.best_metric` seen (the one `best.pt` holds).
    """

    steps: int
    epoch: int
    last_loss: float | None
    best: float | None
    findings: list[Finding] = field(default_factory=list)
    validation: dict[str, float] = field(default_factory=dict)
    final_weights: Path | None = None
    terminated: bool = False  # stopped by SIGTERM at a step boundary, after a checkpoint

    @property
    def val_loss(self) -> float | None:
        """The last validation loss (None without validation)."""
        return self.validation.get("val_loss")


def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    train_data: Dataset,
    val_data: Dataset | DataLoader | None = None,
    *,
    config: FitConfig,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    metrics: Mapping[str, Metric] | None = None,
) -> FitResult:
    """Train `model` on `train_data` (a Dataset of `(inputs, targets)` pairs) and return a FitResult.

    Each optimizer step consumes a *window* of up to `config.accumulation_steps` micro-batches of
    `config.batch_size` samples. Windows never cross an epoch boundary, so an epoch of B
    micro-batches ends with a window of `B % accumulation_steps` micro-batches when that is not 0.
    Every micro-batch's (mean) loss is divided by the number of micro-batches m *in its own
    window*, so each step's gradient is the gradient of the mean of its window's micro-batch
    losses, the last partial window included (dividing it by accumulation_steps instead would
    shrink that step's update).

    Per step: forward under autocast (bf16, or fp16 with a GradScaler), backward of the scaled
    loss, a fail-fast check of the window's loss (NonFiniteLossError, before the update), unscale_
    before clipping and before measuring the gradient norm, optimizer and scaler step,
    `zero_grad(set_to_none=True)`, then `scheduler.step()` (once per optimizer step). At the step
    boundary: logging, validation (model.eval() under inference_mode: the loss and each of `metrics`,
    e.g. {"accuracy": fn}, as means weighted by samples, logged as "val_loss", "val_accuracy"),
    then checkpoints, always last, so a resumed run continues exactly where the checkpoint was
    taken. The model must already be on `config.device`; batches are moved there. SIGTERM
    stops training at the next step boundary, after a checkpoint (`FitResult.terminated`; no
    final.safetensors is written). Launched by torchrun, it trains with DDP (see distributed.py):
    rank r reads every world-th sample of the epoch's order, all ranks validate on the whole
    validation set, and rank 0 writes the files. With `config.compile`, training steps run through
    `torch.compile`; validation and checkpoints use `model` itself.

    A fresh run seeds torch / numpy / python with `config.seed`; `config.resume` continues from
    the newest readable checkpoint in `config.out_dir` (bitwise-exactly: see docs/pipeline.md),
    or starts afresh when there is none. Runs under the guard (`trainguard.watch()`) unless
    `config.guard` is False; its findings are in the result and in `out_dir/report.json`.
    """
    if isinstance(train_data, DataLoader):
        raise TypeError("fit() takes the training Dataset, not a DataLoader: it builds the loader itself "
                        "so that the data order is a pure function of (seed, epoch)")
    if len(train_data) == 0:  # type: ignore[arg-type]
        raise ConfigError("the training data set is empty")
    metrics = dict(metrics or {})
    measured = _validation_names(metrics)
    if "loss" in metrics:
        raise ConfigError("a metric cannot be named 'loss': val_loss is the validation loss")
    if config.best_metric not in measured:
        raise ConfigError(f"best_metric {config.best_metric!r} is not measured (measured: {', '.join(measured)})")
    device = training_device(config.device)
    elsewhere = next((p.device for p in model.parameters() if p.device != device), None)
    if elsewhere is not None:
        raise ConfigError(f"the model is on {elsewhere} but the device is {device}: move it there (model.to(device)) "
                          "before creating the optimizer")
    out = Path(config.out_dir) if config.out_dir is not None else None
    if config.resume and out is None:
        raise ConfigError("resume needs out_dir: the folder that holds the checkpoints")
    ranks = Ranks.join(device)
    try:
        return _fit(model, loss_fn, optimizer, train_data, val_data, config, scheduler, metrics, device, out, ranks)
    finally:
        ranks.leave()


def _fit(model: torch.nn.Module, loss_fn: Callable[[Any, Any], torch.Tensor], optimizer: torch.optim.Optimizer,
         train_data: Dataset, val_data: Dataset | DataLoader | None, config: FitConfig,
         scheduler: torch.optim.lr_scheduler.LRScheduler | None, metrics: dict[str, Metric], device: torch.device,
         out: Path | None, ranks: Ranks) -> FitResult:
    store = CheckpointStore(out / "checkpoints", config.keep_last, writer=ranks.main) if out is not None else None
    if out is not None and ranks.main:  # report.json, final.safetensors, metrics.jsonl of a killed run
        sweep_stale_temporaries(out)
    if store is not None and not config.resume and store.step_paths():
        raise ConfigError(f"{store.folder} already holds checkpoints: resume (--resume), or train into another folder")

    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    # No autocast context at all in fp32: even a disabled one costs ~4 us a micro-batch.
    autocast = (partial(torch.autocast, device.type, dtype=_AUTOCAST_DTYPES[config.precision])
                if config.precision != "fp32" else nullcontext)
    fingerprint = config.fingerprint(len(train_data), ranks.world)  # type: ignore[arg-type]
    position, saved_rng, best = Position(), None, None
    latest = store.latest() if store is not None and config.resume else None
    if latest is not None:
        path, state = latest
        position = apply_state(state, path=path, model=model, optimizer=optimizer, scheduler=scheduler,
                               scaler=scaler, fingerprint=fingerprint)
        saved_rng, best = state["rng"][ranks.rank], state["best"]
        if best is not None and best["metric"] != config.best_metric:
            if ranks.main:
                sys.stderr.write(f"trainguard: best.pt was chosen by {best['metric']}, now by {config.best_metric}: "
                                 "the next validation replaces it\n")
            best = None
    else:
        if config.resume and ranks.main:
            sys.stderr.write(f"trainguard: no checkpoint in {out}: starting from the beginning\n")
        seed_everything(config.seed + ranks.rank)  # ranks draw different dropout masks

    training_model = ranks.wrap(model, device)  # after loading: DDP starts from the restored weights
    if config.compile:  # around DDP, as PyTorch recommends; `model` keeps its own state_dict keys
        training_model = cast(torch.nn.Module, torch.compile(training_model))  # an OptimizedModule; stubs say callable
    batches = batches_per_epoch(train_data, config.batch_size, ranks.world)  # type: ignore[arg-type]
    total_steps = config.total_steps(len(train_data), ranks.world)  # type: ignore[arg-type]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    val_loader = eval_loader(val_data, batch_size=config.eval_batch_size, num_workers=config.num_workers) if val_data is not None else None
    writes_files = out is not None and ranks.main
    log = MetricsLog(out / "metrics.jsonl" if writes_files else None,  # type: ignore[operator]
                         resume_from_step=position.step if config.resume else None,
                         tensorboard_dir=out / "tensorboard" if writes_files and config.tensorboard else None)  # type: ignore[operator]
    guard = _guard() if config.guard else nullcontext()

    epoch, batch, step = position.epoch, position.batch, position.step
    last_loss: float | None = None
    validation: dict[str, float] = {}
    failure: NonFiniteLossError | None = None
    stopping = False  # SIGTERM seen (by any rank) in the current step
    model.train()
    with guard as watch, TrainingProgress(total_steps, step, config.progress and ranks.main) as progress, \
            TerminationRequest() as termination:
        try:
            while step < total_steps and not stopping:
                # Keep the loader referenced: the guard follows batches to their loader by weak reference.
                loader = train_loader(train_data, batch_size=config.batch_size, seed=config.seed, epoch=epoch,
                                      start_batch=batch, num_workers=config.num_workers, rank=ranks.rank, world=ranks.world)
                micro_batches = iter(loader)
                if saved_rng is not None:  # only now: building the iterator must not see the restored state
                    restore_rng(saved_rng)
                    saved_rng = None
                clock, samples_since_log, speed = time.perf_counter(), 0, None
                while batch < batches and step < total_steps and not stopping:
                    # --- one optimizer step over a window of micro-batches -----------------------
                    window = min(config.accumulation_steps, batches - batch)
                    window_loss: torch.Tensor | None = None
                    for index in range(window):
                        inputs, targets = _to_device(next(micro_batches), device)
                        with ranks.no_sync(training_model, accumulating=index < window - 1):
                            with autocast():
                                loss = loss_fn(training_model(inputs), targets)
                            scaler.scale(loss / window if window > 1 else loss).backward()  # / 1 would cost an op
                        detached = loss.detach().float()
                        window_loss = detached if window_loss is None else window_loss + detached
                        samples_since_log += sample_count(targets)
                    batch += window
                    # One exchange per step: the mean loss (all ranks fail fast together) and SIGTERM.
                    summed_loss, stopping = ranks.agree(window_loss, termination.requested)  # type: ignore[arg-type]
                    last_loss = summed_loss / window
                    if not math.isfinite(last_loss):
                        raise NonFiniteLossError(last_loss, step, epoch)
                    log_now = step % config.log_every_steps == 0
                    grad_norm = None
                    if config.clip_grad_norm is not None or log_now:
                        scaler.unscale_(optimizer)  # clip and measure true gradients (a no-op without fp16)
                        grad_norm = (torch.nn.utils.clip_grad_norm_(params, config.clip_grad_norm)
                                     if config.clip_grad_norm is not None else _grad_norm(params)).item()
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    if scheduler is not None:
                        scheduler.step()
                    step += 1

                    # --- the step boundary: log, validate, checkpoint (always last) -------------
                    epoch_done = batch >= batches
                    if log_now:
                        elapsed = time.perf_counter() - clock
                        speed = samples_since_log / elapsed if elapsed > 0 else None
                        log.write("step", step=step - 1, epoch=epoch, loss=last_loss, grad_norm=grad_norm,
                                      lr=optimizer.param_groups[0]["lr"], samples_per_s=speed)
                        clock, samples_since_log = time.perf_counter(), 0
                    progress.update(step, last_loss, speed)
                    improved = False
                    last_step = step == total_steps  # the final weights are always validated
                    if val_loader is not None and (last_step or _due(step, config.eval_every_steps, epoch_done, epoch,
                                                                     config.eval_every_epochs)):
                        validation, samples = evaluate(model, loss_fn, val_loader, device, autocast, metrics)
                        log.write("eval", step=step - 1, epoch=epoch, **validation, samples=samples)
                        value = validation[config.best_metric]
                        improved = best is None or (value < best["value"] if config.best_mode == "min" else value > best["value"])
                        best = {"metric": config.best_metric, "value": value} if improved else best
                    scheduled = _due(step, config.checkpoint_every_steps, epoch_done, epoch, 1) or last_step or stopping
                    if store is not None and (scheduled or improved):
                        here = Position(epoch + 1, 0, step) if epoch_done else Position(epoch, batch, step)
                        state = build_state(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                            rng=ranks.gather(capture_rng()), position=here, fingerprint=fingerprint,
                                            best=best)
                        if scheduled and ranks.main:
                            log.flush()  # a resume logs again from this checkpoint, not from before it
                            store.save(state, step)
                        if improved and ranks.main:
                            store.save_best(state)
                if batch >= batches:
                    epoch, batch = epoch + 1, 0
        except NonFiniteLossError as error:
            failure = error
        finally:
            log.close()
    findings = watch.findings if watch is not None else []
    result = FitResult(step, epoch, last_loss, best["value"] if best is not None else None, findings, validation,
                       terminated=stopping and step < total_steps)
    if out is not None and ranks.main:
        if failure is None and not result.terminated:
            result.final_weights = export_weights(model, out / "final.safetensors", step)
        write_run_report(out, result, failure)
    if failure is not None:
        raise failure
    return result


def evaluate(model: torch.nn.Module, loss_fn: Callable[[Any, Any], torch.Tensor], loader: DataLoader,
             device: torch.device, autocast: Callable[[], Any], metrics: Mapping[str, Metric]) -> tuple[dict[str, float], int]:
    """The sample-weighted means over `loader` of the loss ("val_loss") and of each metric
    ("val_<name>"), in eval mode without autograd, and the number of samples; back to train mode."""
    model.eval()
    totals, count = torch.zeros(1 + len(metrics), device=device), 0
    with torch.inference_mode():  # pure inference: no autograd, no version counters
        for pair in loader:
            inputs, targets = _to_device(pair, device)
            with autocast():
                outputs = model(inputs)
                values = [loss_fn(outputs, targets), *(metric(outputs, targets) for metric in metrics.values())]
            samples = sample_count(targets)
            totals += torch.stack([value.float() for value in values]) * samples
            count += samples
    model.train()
    means = (totals / max(count, 1)).tolist()  # one device sync for all of them
    return dict(zip(_validation_names(metrics), means)), count


def _validation_names(metrics: Mapping[str, Metric]) -> list[str]:
    """What validation measures, as logged: "val_loss", then "val_<name>" per metric."""
    return ["val_loss", *(f"val_{name}" for name in metrics)]


def _due(step: int, every_steps: int | None, epoch_done: bool, epoch: int, every_epochs: int | None) -> bool:
    by_step = every_steps is not None and step % every_steps == 0
    by_epoch = epoch_done and every_epochs is not None and (epoch + 1) % every_epochs == 0
    return by_step or by_epoch


def _grad_norm(params: Sequence[torch.Tensor]) -> torch.Tensor:
    # Measured without clip_grad_norm_(max_norm=inf), which would multiply Inf gradients into NaN.
    norms = [torch.linalg.vector_norm(p.grad.float()) for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


def _to_device(pair: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = pair
    return inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)


def _guard() -> Any:
    from trainguard.runtime.api import watch

    return watch()
