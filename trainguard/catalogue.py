"""The rule catalogue: every rule's stable code, slug, default severity and where it runs.

The long documentation of each rule (what it detects / why it hurts / example / fix) lives beside
this module in ``rules/<CODE>.md`` and is what ``trainguard rules SLUG`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Iterable, Literal

from trainguard.findings import Severity

Where = Literal["run", "lint", "both"]


@dataclass(frozen=True)
class Rule:
    """A catalogue entry. `where` says which face detects it: runtime, static, or both."""

    code: str
    slug: str
    severity: Severity
    where: Where
    summary: str

    @property
    def runs(self) -> bool:
        return self.where in ("run", "both")

    @property
    def lints(self) -> bool:
        return self.where in ("lint", "both")

    def docs(self) -> str:
        """The rule's Markdown documentation."""
        return resources.files("trainguard.rules").joinpath(f"{self.code}.md").read_text("utf-8")


E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO

RULES: tuple[Rule, ...] = (
    Rule("TG101", "stale-gradients", E, "both", "gradients carried over an optimizer step: `.grad` not cleared between steps"),
    Rule("TG102", "accumulation-loss-not-scaled", W, "both", "gradient accumulation over N micro-batches without dividing the loss by N"),
    Rule("TG103", "batchnorm-with-accumulation", W, "run", "BatchNorm in train mode while accumulating gradients (statistics per micro-batch)"),
    Rule("TG104", "clip-before-unscale", E, "both", "gradient clipping on GradScaler-scaled gradients (no `unscale_` first)"),
    Rule("TG105", "params-not-in-optimizer", E, "both", "trainable parameters that no optimizer updates"),
    Rule("TG106", "params-without-grad", W, "run", "parameters in an optimizer that never receive a gradient"),
    Rule("TG107", "non-finite-gradients", E, "run", "NaN/Inf in gradients"),
    Rule("TG108", "exploding-gradients", W, "run", "gradient norm above a threshold or far above its running median"),
    Rule("TG109", "vanishing-gradients", W, "run", "layers whose gradients stay ~0"),
    Rule("TG110", "scheduler-before-optimizer", W, "both", "`lr_scheduler.step()` before `optimizer.step()`"),
    Rule("TG111", "retain-graph-in-loop", W, "both", "`backward(retain_graph=True)` every step"),
    Rule("TG201", "eval-mode-missing", E, "both", "evaluation forward passes with Dropout/BatchNorm still in train mode"),
    Rule("TG202", "train-mode-missing", E, "both", "training steps while the model is still in eval mode"),
    Rule("TG203", "no-grad-missing", W, "both", "evaluation/inference forward passes that build an autograd graph nobody uses"),
    Rule("TG204", "graph-retained", E, "both", "loss/output tensors kept alive across steps (graph and memory grow)"),
    Rule("TG205", "direct-forward-call", W, "lint", "`model.forward(x)` instead of `model(x)` (hooks bypassed)"),
    Rule("TG301", "unregistered-module", E, "both", "modules/parameters hidden in plain lists, dicts or tuples"),
    Rule("TG302", "softmax-before-cross-entropy", E, "both", "probabilities (softmax/log_softmax output) fed to `CrossEntropyLoss`"),
    Rule("TG303", "sigmoid-before-bce-with-logits", E, "both", "probabilities fed to `BCEWithLogitsLoss`"),
    Rule("TG304", "loss-shape-broadcast", E, "run", "loss input and target shapes that broadcast silently"),
    Rule("TG305", "regression-loss-on-class-labels", W, "run", "MSE/L1 loss on integer class labels"),
    Rule("TG306", "non-finite-loss", E, "run", "NaN/Inf loss"),
    Rule("TG401", "val-loss-divergence", W, "run", "validation loss rising for several evaluations in a row past its best"),
    Rule("TG402", "loss-not-decreasing", W, "run", "training loss not improving at all over the first steps"),
    Rule("TG501", "train-loader-not-shuffled", W, "both", "training data read in a fixed order every epoch"),
    Rule("TG502", "sampler-epoch-not-set", W, "both", "`DistributedSampler.set_epoch` never called: the same order every epoch"),
    Rule("TG503", "non-finite-inputs", E, "run", "NaN/Inf in input batches"),
    Rule("TG601", "fp16-without-grad-scaler", E, "both", "float16 autocast training without a GradScaler"),
    Rule("TG602", "deprecated-amp-api", I, "lint", "`torch.cuda.amp.autocast` / `torch.cuda.amp.GradScaler`"),
    Rule("TG701", "unsafe-torch-load", W, "both", "`torch.load` of a pickle without `weights_only=True`"),
    Rule("TG702", "incomplete-checkpoint", W, "lint", "a training checkpoint without optimizer state (resume is not exact)"),
    Rule("TG801", "ddp-desync", E, "run", "parameters differing across ranks"),
    Rule("TG802", "dataparallel-used", W, "both", "`nn.DataParallel` instead of DistributedDataParallel"),
    Rule("TG803", "batchnorm-without-syncbn", W, "run", "BatchNorm under DDP without SyncBatchNorm"),
)
del E, W, I

_BY_CODE = {rule.code: rule for rule in RULES}
_BY_SLUG = {rule.slug: rule for rule in RULES}


class UnknownRuleError(ValueError):
    """A rule name that is neither a code, a slug nor a code prefix of the catalogue."""


def get_rule(name: str) -> Rule:
    """Look a rule up by code (`TG101`, any case) or slug (`stale-gradients`)."""
    rule = _BY_CODE.get(name.strip().upper()) or _BY_SLUG.get(name.strip().lower())
    if rule is None:
        raise UnknownRuleError(f"unknown rule {name!r}: run `trainguard rules` for the list")
    return rule


def match_rules(names: Iterable[str]) -> set[str]:
    """Codes named by codes, slugs or code prefixes (`TG1` = every TG1xx rule)."""
    codes: set[str] = set()
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        prefix = name.upper()
        by_prefix = {code for code in _BY_CODE if code.startswith(prefix)}
        if by_prefix:
            codes |= by_prefix
        else:
            codes.add(get_rule(name).code)
    return codes


def split_names(value: str | Iterable[str] | None) -> list[str]:
    """Accept `"TG1,softmax-before-cross-entropy"` or a list of names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.split(",") if part.strip()]
    return [part for item in value for part in split_names(item)]


@dataclass(frozen=True)
class RuleSelection:
    """Which rule codes are enabled after `--select` and `--ignore`."""

    codes: frozenset[str]

    @classmethod
    def build(cls, select: str | Iterable[str] | None = None, ignore: str | Iterable[str] | None = None) -> RuleSelection:
        selected = match_rules(split_names(select)) if split_names(select) else set(_BY_CODE)
        return cls(frozenset(selected - match_rules(split_names(ignore))))

    def __contains__(self, code: object) -> bool:
        return code in self.codes
