"""Data sanity: are the training and validation data what the model and loss expect?

On up to `SAMPLES` samples of each data set (spread over map-style data, the first ones of an
iterable one) the probe checks: NaN/Inf in inputs or targets (TG503); class-index targets of the
dtype the classification loss needs (int64) and inside the model's output size (error, with the
labels seen and the classes the model has); integer labels fed to a regression loss (TG305);
features far from normalised (a per-feature mean or std beyond `SCALE_LIMIT`); class balance
(largest / smallest class count beyond `IMBALANCE_LIMIT`); a training loader that reads in a fixed
order (TG501) and a validation loader that shuffles (info: harmless for the metrics, but runs are
harder to compare); and inputs that occur in both training and validation data (hashed, a leak).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler

from trainguard.doctor.batches import collate, forward, read_samples, tensors_in
from trainguard.doctor.context import ProbeContext
from trainguard.doctor.losses import loss_kind
from trainguard.doctor.probe import Outcome, Probe, Table, make_finding
from trainguard.doctor.setup import describe_error
from trainguard.findings import Finding, Severity

SAMPLES = 4096
SCALE_LIMIT = 10.0
IMBALANCE_LIMIT = 10.0


@dataclass
class Sample:
    """Up to `SAMPLES` samples of one data set, collated."""

    role: str
    inputs: list[torch.Tensor]
    targets: torch.Tensor

    @property
    def count(self) -> int:
        """How many samples were read."""
        return int(self.targets.shape[0]) if self.targets.dim() else 1

    @property
    def class_labels(self) -> bool:
        """Targets that look like class indices: integer, one per sample."""
        return not torch.is_floating_point(self.targets) and self.targets.dim() == 1 and self.targets.dtype != torch.bool


def _read(data: Any, role: str) -> Sample:
    inputs, targets = collate(data, read_samples(data, SAMPLES))
    return Sample(role, [tensor.cpu() for tensor in tensors_in(inputs)], torch.as_tensor(targets).cpu())


def _classes(context: ProbeContext) -> int | None:
    """The model's output size along the class dimension, from a forward pass on a few samples."""
    model = context.fresh_model().eval()
    inputs, _ = context.batch()
    try:
        with torch.no_grad():
            output = forward(model, inputs)
    except Exception:  # loss-at-init reports a forward pass that raises
        return None
    return int(output.shape[1]) if isinstance(output, torch.Tensor) and output.dim() >= 2 else None


def _non_finite(sample: Sample, context: ProbeContext) -> list[Finding]:
    tensors = [t for t in [*sample.inputs, sample.targets] if torch.is_floating_point(t)]
    bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors)
    if not bad:
        return []
    return [make_finding("non-finite-inputs", f"{bad} NaN/Inf values in {sample.count} {sample.role} samples",
                         fix="clean or impute the data before training (torch.nan_to_num, or drop the samples)",
                         place=context.setup_place, evidence={"data": sample.role, "non_finite": bad})]


def _labels(sample: Sample, context: ProbeContext, classes: int | None) -> list[Finding]:
    kind = loss_kind(context.setup.loss_fn)
    findings = []
    if kind == "regression" and sample.class_labels:
        findings.append(make_finding(
            "regression-loss-on-class-labels",
            f"the {sample.role} targets are integer labels ({sample.targets.dtype}) and the loss is a regression loss",
            fix="use nn.CrossEntropyLoss with class-index targets for classification",
            place=context.setup_place, evidence={"data": sample.role}))
    if kind in ("cross-entropy", "nll") and sample.targets.dim() == 1 and sample.targets.dtype not in (torch.int64, torch.uint8):
        findings.append(make_finding(
            "data-sanity", f"the {sample.role} targets are {sample.targets.dtype}, but {type(context.setup.loss_fn).__name__} "
            "needs int64 class indices", fix="convert the targets with .long() when building the data set",
            place=context.setup_place, evidence={"data": sample.role, "dtype": str(sample.targets.dtype)}, severity=Severity.ERROR))
    if classes is not None and sample.class_labels and sample.count:
        low, high = int(sample.targets.min()), int(sample.targets.max())
        if low < 0 or high >= classes:
            out = int(((sample.targets < 0) | (sample.targets >= classes)).sum())
            findings.append(make_finding(
                "data-sanity",
                f"the {sample.role} labels span {low}..{high} but the model has {classes} outputs (classes 0..{classes - 1}): "
                f"{out} of {sample.count} samples have a label out of range",
                fix=(f"shift the labels to start at 0 (labels - {low})" if low > 0 and high - low < classes
                     else f"map the labels to 0..{classes - 1}, or give the model {high + 1} outputs"),
                place=context.setup_place, severity=Severity.ERROR,
                evidence={"data": sample.role, "label_min": low, "label_max": high, "classes": classes, "out_of_range": out}))
    return findings


def feature_statistics(sample: Sample) -> dict[str, float] | None:
    """Per-feature (dimension 1) mean and std of the first floating-point input, or None."""
    inputs = next((t for t in sample.inputs if torch.is_floating_point(t)), None)
    if inputs is None or inputs.shape[0] < 2 or not bool(torch.isfinite(inputs).all()):
        return None
    values = inputs.double()
    per_feature = values.transpose(0, 1).reshape(values.shape[1], -1) if values.dim() >= 2 else values.reshape(1, -1)
    mean, std = per_feature.mean(dim=1), per_feature.std(dim=1)
    return {"features": int(per_feature.shape[0]), "mean_min": float(mean.min()), "mean_max": float(mean.max()),
            "std_min": float(std.min()), "std_max": float(std.max())}


def _scale(stats: dict[str, float] | None, context: ProbeContext) -> list[Finding]:
    if stats is None:
        return []
    largest_mean = max(abs(stats["mean_min"]), abs(stats["mean_max"]))
    if largest_mean <= SCALE_LIMIT and stats["std_max"] <= SCALE_LIMIT:
        return []
    return [make_finding(
        "data-sanity",
        f"the training inputs are not normalised: per-feature means up to {largest_mean:.3g} and stds up to "
        f"{stats['std_max']:.3g} (limit {SCALE_LIMIT:g})",
        fix="standardise the inputs with the training set's per-feature mean and std", place=context.setup_place,
        evidence={key: round(value, 4) for key, value in stats.items()}, severity=Severity.WARNING)]


def _balance(train: Sample, context: ProbeContext) -> tuple[list[Finding], dict[int, int]]:
    if not train.class_labels or not train.count:
        return [], {}
    labels, counts = torch.unique(train.targets, return_counts=True)
    table = dict(zip(labels.tolist(), counts.tolist()))
    ratio = max(table.values()) / min(table.values())
    if ratio <= IMBALANCE_LIMIT:
        return [], table
    return [make_finding(
        "data-sanity", f"the training classes are imbalanced: the largest has {ratio:.1f}x the samples of the smallest",
        fix="weight the loss (CrossEntropyLoss(weight=...)) or sample with WeightedRandomSampler, and watch per-class metrics",
        place=context.setup_place, evidence={"imbalance": round(ratio, 2)}, severity=Severity.WARNING)], table


def shuffles(loader: DataLoader) -> bool | None:
    """Whether the loader reads its data in a new random order each epoch (None: cannot tell)."""
    batch_sampler = loader.batch_sampler
    sampler = getattr(batch_sampler, "sampler", None) if batch_sampler is not None else loader.sampler
    if isinstance(sampler, SequentialSampler):
        return False
    if isinstance(sampler, (RandomSampler, SubsetRandomSampler, WeightedRandomSampler)):
        return True
    shuffle = getattr(sampler, "shuffle", None)  # DistributedSampler and similar
    return shuffle if isinstance(shuffle, bool) else None


def _order(context: ProbeContext) -> tuple[list[Finding], dict[str, bool | None]]:
    findings: list[Finding] = []
    evidence: dict[str, bool | None] = {}
    for role, data in (("train", context.setup.train_data), ("val", context.setup.val_data)):
        if data is None:
            continue
        shuffled = shuffles(data) if isinstance(data, DataLoader) else None
        evidence[f"{role}_shuffled"] = shuffled
        if role == "train" and shuffled is False:
            findings.append(make_finding(
                "train-loader-not-shuffled", "the training DataLoader reads the data in the same fixed order every epoch",
                fix="pass shuffle=True (and a seeded generator=torch.Generator() for reproducible runs) to the training DataLoader",
                place=context.setup_place))
        if role == "val" and shuffled:
            findings.append(make_finding(
                "data-sanity", "the validation DataLoader shuffles: the metrics are unaffected, but per-batch outputs differ run to run",
                fix="pass shuffle=False to the validation DataLoader", place=context.setup_place, severity=Severity.INFO))
    return findings, evidence


def _hashes(sample: Sample) -> list[bytes]:
    digests = []
    for index in range(sample.count):
        digest = hashlib.blake2b(digest_size=16)
        for tensor in sample.inputs:
            digest.update(tensor[index].reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        digests.append(digest.digest())
    return digests


def _overlap(train: Sample, val: Sample, context: ProbeContext) -> tuple[list[Finding], int]:
    seen = set(_hashes(train))
    shared = sum(digest in seen for digest in _hashes(val))
    if not shared:
        return [], 0
    return [make_finding(
        "data-sanity", f"{shared} of {val.count} validation samples checked also occur in the {train.count} training samples "
        "checked: validation overestimates generalisation", fix="split the data before augmenting, and drop the shared samples from validation",
        place=context.setup_place, evidence={"shared": shared, "val_checked": val.count, "train_checked": train.count},
        severity=Severity.WARNING)], shared


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def run(context: ProbeContext) -> Outcome:
    """Read samples of the training and validation data and check them against the model and loss."""
    samples = []
    for role, data in (("train", context.setup.train_data), ("val", context.setup.val_data)):
        if data is None:
            continue
        try:
            samples.append(_read(data, role))
        except Exception as error:
            message = f"reading and collating {role} samples raised {describe_error(error)}"
            return Outcome(message, [make_finding("data-sanity", message, fix="make every sample an (inputs, targets) pair of tensors",
                                                  place=context.setup_place, severity=Severity.ERROR)])
    train, val = samples[0], (samples[1] if len(samples) > 1 else None)
    classes = _classes(context)
    findings: list[Finding] = []
    for sample in samples:
        findings += _non_finite(sample, context) + _labels(sample, context, classes)
    stats = feature_statistics(train)
    findings += _scale(stats, context)
    balance_findings, counts = _balance(train, context)
    findings += balance_findings
    order_findings, order = _order(context)
    findings += order_findings
    overlap_findings, shared = _overlap(train, val, context) if val is not None else ([], 0)
    findings += overlap_findings
    evidence: dict[str, object] = {
        "train_checked": train.count, "val_checked": val.count if val else 0, "model_outputs": classes,
        "input_dtypes": [str(t.dtype) for t in train.inputs], "target_dtype": str(train.targets.dtype),
        **order, "shared_train_val": shared, **({key: round(value, 4) for key, value in stats.items()} if stats else {}),
    }
    if train.class_labels and train.count:
        evidence.update(label_min=int(train.targets.min()), label_max=int(train.targets.max()))
    val_counts = dict(zip(*(t.tolist() for t in torch.unique(val.targets, return_counts=True)))) if val and val.class_labels else {}
    table = Table(["class", "train samples", "val samples"],
                  [[label, counts.get(label, 0), val_counts.get(label, 0)] for label in sorted(set(counts) | set(val_counts))]) if counts else None
    labels = f"labels {evidence['label_min']}..{evidence['label_max']}" if "label_min" in evidence else f"targets {train.targets.dtype}"
    summary = (f"{train.count} train / {evidence['val_checked']} val samples checked: {labels} for {classes} outputs, "
               f"train shuffled: {_yes_no(order.get('train_shuffled'))}, {shared} shared with val")
    return Outcome(summary, findings, evidence, table=table)


PROBE = Probe("data-sanity", "Data sanity", run, requires="nothing")
