"""What a run leaves in its folder besides checkpoints: final.safetensors and report.json."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from trainguard.catalogue import get_rule
from trainguard.findings import Finding, Severity
from trainguard.pipeline.atomic import atomic_path, write_text_atomic
from trainguard.report import build_report

if TYPE_CHECKING:
    from trainguard.pipeline.loop import FitResult, NonFiniteLossError


def export_weights(model: torch.nn.Module, path: Path, step: int) -> Path:
    """The model's weights as safetensors (shared tensors written once), atomically."""
    from safetensors.torch import save_model

    with atomic_path(path) as temporary:
        save_model(model, str(temporary), metadata={"format": "pt", "step": str(step)})
        sort_safetensors_metadata(temporary)
    return path


def sort_safetensors_metadata(path: Path) -> None:
    """Rewrite the header's `__metadata__` with its keys sorted, in place: safetensors writes that
    table from a hash map whose order changes between processes, so the same weights gave
    different bytes. The header keeps its length (same keys and values), so the tensors stay put."""
    import json

    with open(path, "r+b") as handle:
        length = int.from_bytes(handle.read(8), "little")
        raw = handle.read(length)
        header = json.loads(raw)
        metadata = header.pop("__metadata__", None)
        if metadata is None:
            return
        ordered = {"__metadata__": dict(sorted(metadata.items())), **header}
        text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        # safetensors pads the header with spaces to keep the tensor data aligned; keep that padding.
        rewritten = text + b" " * (length - len(text))
        if len(rewritten) != length:
            raise RuntimeError(f"safetensors header of {path} changed length when its metadata was sorted")
        handle.seek(8)
        handle.write(rewritten)


def non_finite_loss_finding(error: NonFiniteLossError) -> Finding:
    """The pipeline's fail-fast stop, as the catalogue's TG306 finding."""
    rule = get_rule("TG306")
    return Finding(rule=rule.slug, code=rule.code, severity=Severity.ERROR, message=str(error), step=error.step,
                   fix="lower the learning rate, clip gradients (clip_grad_norm) or check the inputs for NaN/Inf", evidence={"loss": str(error.loss), "epoch": error.epoch})


def write_run_report(out: Path, result: FitResult, failure: NonFiniteLossError | None) -> Path:
    """report.json: the guard's findings (plus TG306 when the loss went non-finite) and the run's numbers."""
    import json

    findings = list(result.findings) + ([non_finite_loss_finding(failure)] if failure is not None else [])
    report = build_report("run", findings, metrics="metrics.jsonl", pipeline={
        "steps": result.steps, "epoch": result.epoch, "last_loss": result.last_loss,
        "val_loss": result.val_loss, "validation": result.validation, "best": result.best,
        "final_weights": result.final_weights.name if result.final_weights is not None else None,
    })
    path = out / "report.json"
    write_text_atomic(path, json.dumps(report, indent=2, default=str) + "\n")
    return path
