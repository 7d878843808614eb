"""The rule catalogue: each rule's one specification (code, slug, severity, faces, summary, fix,
when the guard sees it, the thresholds it reads).

Everything else about a rule is derived from its entry here: the fix text that the runtime
detectors and the lint rules print, `trainguard rules`, SARIF rule metadata, and the rule tables
of `docs/rules.md` and the README (written by `python -m trainguard.rule_tables --write`, checked
by a test). The long documentation of each rule (what it detects / why it hurts / example / fix)
lives beside this module in ``rules/<CODE>.md`` and is what ``trainguard rules SLUG`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Iterable, Literal

from trainguard.findings import Severity

Where = Literal["run", "lint", "both"]


@dataclass(frozen=True)
class Rule:
    """A rule's one specification, from which everything else about it is derived.

    `where` says which face detects it: runtime, static, or both. `fix` is the one sentence both
    faces print with every finding of the rule. `seen_when` (runtime rules) says at which moment
    of a run the guard can first observe it; `{name}` in it stands for the default of the
    threshold `name`. `thresholds` names the `Thresholds` fields the rule's detector reads. The
    long documentation is the page `trainguard/rules/<code>.md` (`docs()`).
    """

    code: str
    slug: str
    severity: Severity
    where: Where
    summary: str
    fix: str
    seen_when: str = ""
    thresholds: tuple[str, ...] = ()

    @property
    def runs(self) -> bool:
        return self.where in ("run", "both")

    @property
    def lints(self) -> bool:
        return self.where in ("lint", "both")

    @property
    def doc_path(self) -> str:
        """The documentation page, relative to the repository root."""
        return f"trainguard/rules/{self.code}.md"

    def docs(self) -> str:
        """The rule's Markdown documentation."""
        return resources.files("trainguard.rules").joinpath(f"{self.code}.md").read_text("utf-8")


E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO

RULES: tuple[Rule, ...] = (
    Rule(
        "TG101", "stale-gradients", E, "both",
        summary="gradients carried over an optimizer step: `.grad` not cleared between steps",
        fix="call optimizer.zero_grad() (or model.zero_grad()) once per optimizer step, before backward()",
        seen_when="the first step that used gradients not cleared since the last one",
    ),
    Rule(
        "TG102", "accumulation-loss-not-scaled", W, "both",
        summary="gradient accumulation over N micro-batches without dividing the loss by N",
        fix="divide each micro-batch loss by the number of micro-batches in the window before backward(): (loss / accumulation_steps).backward()",
        seen_when="a step that summed >= 2 loader batches' raw mean losses",
    ),
    Rule(
        "TG103", "batchnorm-with-accumulation", W, "run",
        summary="BatchNorm in train mode while accumulating gradients (statistics per micro-batch)",
        fix="use a larger micro-batch, or replace BatchNorm with GroupNorm/LayerNorm when accumulating; at least keep the micro-batch large enough for stable statistics",
        seen_when="a step accumulating micro-batches through train-mode BatchNorm",
    ),
    Rule(
        "TG104", "clip-before-unscale", E, "both",
        summary="gradient clipping on GradScaler-scaled gradients (no `unscale_` first)",
        fix="call scaler.unscale_(optimizer) before clip_grad_norm_/clip_grad_value_",
        seen_when="a clip of GradScaler-scaled gradients",
    ),
    Rule(
        "TG105", "params-not-in-optimizer", E, "both",
        summary="trainable parameters that no optimizer updates",
        fix="pass every trainable parameter to an optimizer (e.g. optimizer = AdamW(model.parameters())), or freeze the ones you do not train with requires_grad_(False)",
        seen_when="the first step: trainable parameters with gradients in no optimizer",
    ),
    Rule(
        "TG106", "params-without-grad", W, "run",
        summary="parameters in an optimizer that never receive a gradient",
        fix="remove the parameters from the optimizer (or the layer from the model) if it is unused, or make sure the forward pass uses it (a branch never taken, a .detach(), a layer never called)",
        seen_when="step 2: optimizer parameters that never got a gradient",
    ),
    Rule(
        "TG107", "non-finite-gradients", E, "run",
        summary="NaN/Inf in gradients",
        fix="lower the learning rate, clip gradients (after scaler.unscale_), look for log(0), sqrt(0) or division by ~0 in the model and the loss",
        seen_when="NaN/Inf gradients under a finite loss (or when no loss value was seen)",
    ),
    Rule(
        "TG108", "exploding-gradients", W, "run",
        summary="gradient norm blowing up, growing or spiking far above the run's own history",
        fix="clip gradients (torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0), after scaler.unscale_), lower the learning rate or add warm-up",
        seen_when="a gradient norm blowing up, growing {growth_factor}x while the loss rises, or a spike the loss confirms, judged against the run's own history (an absolute limit is opt-in: `--threshold exploding_norm=10`)",
        thresholds=("growth_factor", "spike_factor", "spike_history", "norm_warmup", "exploding_norm"),
    ),
    Rule(
        "TG109", "vanishing-gradients", W, "run",
        summary="layers whose gradients stay ~0",
        fix="check for saturated activations (sigmoid/tanh), dead ReLUs, a too-small init or learning rate, a .detach() or a missing residual/normalisation",
        seen_when="a layer's gradients ~0 for {vanishing_patience} measurements",
        thresholds=("vanishing_rms", "vanishing_patience"),
    ),
    Rule(
        "TG110", "scheduler-before-optimizer", W, "both",
        summary="`lr_scheduler.step()` before `optimizer.step()`",
        fix="call scheduler.step() after optimizer.step() (per batch after the step, or once per epoch after the batch loop)",
        seen_when="a `scheduler.step()` before its optimizer stepped",
    ),
    Rule(
        "TG111", "retain-graph-in-loop", W, "both",
        summary="`backward(retain_graph=True)` every step",
        fix="drop retain_graph=True (keep it only on all but the last backward of a step that reuses a graph) and detach state carried across steps, such as an RNN hidden state",
        seen_when="two consecutive steps whose every backward retained the graph",
    ),
    Rule(
        "TG113", "clip-after-step", W, "both",
        summary="gradient clipping after `optimizer.step()` (the step already used the unclipped gradients)",
        fix="call clip_grad_norm_/clip_grad_value_ after backward() and before optimizer.step() (after scaler.unscale_(optimizer) when a GradScaler is used)",
        seen_when="a clip after an optimizer step, before the next backward()",
    ),
    Rule(
        "TG114", "zero-grad-before-step", E, "both",
        summary="gradients cleared between `backward()` and `optimizer.step()` (the step applies nothing)",
        fix="clear gradients before backward() or right after optimizer.step(), never between backward() and optimizer.step()",
        seen_when="the first optimizer step after a zero_grad() that followed its last backward()",
    ),
    Rule(
        "TG115", "scheduler-stepped-per-batch", E, "both",
        summary="an epoch-scale LR schedule stepped every batch (the learning rate collapses within the first epoch)",
        fix="step a schedule sized in epochs once per epoch, after the batch loop, or size it in steps to step it every batch (such as T_max=epochs * len(loader))",
        seen_when="a scheduler step in the second epoch, after the schedule ran out within the first half of the first",
    ),
    Rule(
        "TG116", "weight-decay-on-norm-and-bias", W, "both",
        summary="weight decay applied to normalization weights and biases",
        fix="put normalization weights and biases in a param group with weight_decay=0 (for instance decay only parameters with p.dim() >= 2)",
        seen_when="the first optimizer step: a param group with weight decay holding normalization weights or biases",
        thresholds=("norm_decay_warning",),
    ),
    Rule(
        "TG201", "eval-mode-missing", E, "both",
        summary="evaluation forward passes with Dropout/BatchNorm still in train mode",
        fix="call model.eval() before evaluation (and model.train() before training resumes)",
        seen_when="an evaluation forward with Dropout/BatchNorm in train mode",
    ),
    Rule(
        "TG202", "train-mode-missing", E, "both",
        summary="training steps while the model is still in eval mode",
        fix="call model.train() before training: at the start of each epoch and again after each evaluation, which leaves the model in eval mode",
        seen_when="a training step of a model in eval mode",
    ),
    Rule(
        "TG203", "no-grad-missing", W, "both",
        summary="evaluation/inference forward passes that build an autograd graph nobody uses",
        fix="wrap evaluation and inference in `with torch.no_grad():` (or torch.inference_mode())",
        seen_when="a forward whose graph no backward used",
    ),
    Rule(
        "TG204", "graph-retained", E, "both",
        summary="loss/output tensors kept alive across steps (graph and memory grow)",
        fix="keep numbers, not tensors: losses.append(loss.item()), total += loss.item(), outputs.append(out.detach())",
        seen_when="graphs of losses or outputs of >= 2 earlier steps still alive (a list, `total += loss`)",
    ),
    Rule(
        "TG205", "direct-forward-call", W, "lint",
        summary="`model.forward(x)` instead of `model(x)` (hooks bypassed)",
        fix="call the module itself: model(x) instead of model.forward(x)",
    ),
    Rule(
        "TG301", "unregistered-module", E, "both",
        summary="modules/parameters hidden in plain lists, dicts or tuples",
        fix="hold sub-modules in nn.ModuleList / nn.ModuleDict / nn.Sequential (parameters in nn.ParameterList / nn.ParameterDict), not in plain lists, dicts or tuples",
        seen_when="a trainable module run by a model that does not register it",
    ),
    Rule(
        "TG302", "softmax-before-cross-entropy", E, "both",
        summary="probabilities (softmax/log_softmax output) fed to `CrossEntropyLoss`",
        fix="pass the raw logits to cross_entropy / CrossEntropyLoss (it applies log_softmax itself), or use nll_loss on log_softmax output; keep softmax for metrics and predictions",
        seen_when="cross_entropy fed softmax output",
    ),
    Rule(
        "TG303", "sigmoid-before-bce-with-logits", E, "both",
        summary="probabilities fed to `BCEWithLogitsLoss`",
        fix="pass the raw logits to BCEWithLogitsLoss (it applies the sigmoid itself), or use BCELoss on probabilities",
        seen_when="BCE-with-logits fed sigmoid output",
    ),
    Rule(
        "TG304", "loss-shape-broadcast", E, "run",
        summary="loss input and target shapes that broadcast silently",
        fix="make input and target the same shape, e.g. loss_fn(output.squeeze(-1), target) or target.view_as(output)",
        seen_when="regression loss on shapes that broadcast",
    ),
    Rule(
        "TG305", "regression-loss-on-class-labels", W, "run",
        summary="MSE/L1 loss on integer class labels",
        fix="for class labels use CrossEntropyLoss on logits with shape [N, C]; use MSE/L1 only for real-valued targets",
        seen_when="MSE/L1 on an integer target",
    ),
    Rule(
        "TG306", "non-finite-loss", E, "run",
        summary="NaN/Inf loss",
        fix="lower the learning rate (or add warm-up), clip gradients, check the inputs and the loss for log(0)/division by zero, and use a GradScaler with fp16 (`trainguard run --strict` stops at the first NaN/Inf loss)",
        seen_when="the first step with a NaN/Inf loss (`--strict` stops before the update)",
    ),
    Rule(
        "TG401", "val-loss-divergence", W, "run",
        summary="validation loss rising for several evaluations in a row past its best",
        fix="stop early and keep the best checkpoint; add regularisation (weight decay, dropout, augmentation) or lower the learning rate",
        seen_when="validation loss rising past its best (by > 2 %) for {val_patience} evaluations in a row",
        thresholds=("val_patience", "val_min_delta"),
    ),
    Rule(
        "TG402", "loss-not-decreasing", W, "run",
        summary="training loss not improving at all over the first steps",
        fix="overfit one small batch first; check the learning rate, that the optimizer holds the model's parameters, that zero_grad/step run, and that targets match the outputs",
        seen_when="no improvement over the first {loss_window} steps",
        thresholds=("loss_window", "min_improvement"),
    ),
    Rule(
        "TG501", "train-loader-not-shuffled", W, "both",
        summary="training data read in a fixed order every epoch",
        fix="create the training DataLoader with shuffle=True (or a shuffling sampler such as a DistributedSampler with shuffle=True); keep validation unshuffled",
        seen_when="a step trained on a loader with a sequential sampler",
    ),
    Rule(
        "TG502", "sampler-epoch-not-set", W, "both",
        summary="`DistributedSampler.set_epoch` never called: the same order every epoch",
        fix="call sampler.set_epoch(epoch) at the start of every epoch, before iterating the loader",
        seen_when="a second epoch over a `DistributedSampler` with the same epoch",
    ),
    Rule(
        "TG503", "non-finite-inputs", E, "run",
        summary="NaN/Inf in input batches",
        fix="find the NaN/Inf in the data (missing values, division by zero in preprocessing) and clean or impute it; check `torch.isfinite(x).all()` in the dataset",
        seen_when="a NaN/Inf in an input batch",
    ),
    Rule(
        "TG504", "validation-data-in-training", W, "run",
        summary="validation samples also present in the training data",
        fix="split the dataset once into disjoint parts (one random_split call with a seeded generator, or fixed index lists) and build the training loader from the training part only",
        seen_when="the first evaluation batch of a loader sharing at least {leak_share} of its samples with the training loader (by index), or the end of the first evaluation pass (by content)",
        thresholds=("leak_share",),
    ),
    Rule(
        "TG505", "augmentation-on-validation", W, "run",
        summary="random augmentation applied to evaluation data (the same sample differs between evaluations)",
        fix="give the evaluation dataset its own deterministic transform (resize, center-crop, normalize) and keep random transforms on the training dataset only",
        seen_when="the second evaluation, when a sample of the same dataset index yields different inputs than in the first",
    ),
    Rule(
        "TG601", "fp16-without-grad-scaler", E, "both",
        summary="float16 autocast training without a GradScaler",
        fix="use torch.amp.GradScaler with float16 autocast (scaler.scale(loss).backward(); scaler.step(optimizer); scaler.update()), or train in bfloat16",
        seen_when="a float16 step without GradScaler",
    ),
    Rule(
        "TG602", "deprecated-amp-api", I, "lint",
        summary="`torch.cuda.amp.autocast` / `torch.cuda.amp.GradScaler`",
        fix="use torch.amp.autocast(device_type, ...) and torch.amp.GradScaler(device_type)",
    ),
    Rule(
        "TG701", "unsafe-torch-load", W, "both",
        summary="`torch.load` of a pickle without `weights_only=True`",
        fix="pass weights_only=True to torch.load (save plain tensors and dicts so they load that way), or use safetensors",
        seen_when="`torch.load` that may unpickle code",
    ),
    Rule(
        "TG702", "incomplete-checkpoint", W, "lint",
        summary="a training checkpoint without optimizer state (resume is not exact)",
        fix="save optimizer.state_dict() (and scheduler/scaler state) in the checkpoint so training resumes exactly",
    ),
    Rule(
        "TG801", "ddp-desync", E, "run",
        summary="parameters differing across ranks",
        fix="make every rank start from the same weights (build the model with the same seed, or load the checkpoint before wrapping in DDP, which broadcasts rank 0's parameters) and never modify parameters on one rank only",
        seen_when="parameters that differ across ranks (exact checksums, steps 0, 9, then every {desync_every})",
        thresholds=("desync_every", "desync_timeout"),
    ),
    Rule(
        "TG802", "dataparallel-used", W, "both",
        summary="`nn.DataParallel` instead of DistributedDataParallel",
        fix="use torch.nn.parallel.DistributedDataParallel launched with torchrun (one process per GPU) instead of nn.DataParallel",
        seen_when="a model trained through `nn.DataParallel`",
    ),
    Rule(
        "TG803", "batchnorm-without-syncbn", W, "run",
        summary="BatchNorm under DDP without SyncBatchNorm",
        fix="convert the model before wrapping it: model = nn.SyncBatchNorm.convert_sync_batchnorm(model), then DDP(model)",
        seen_when="BatchNorm in train mode under multi-rank DDP without SyncBatchNorm",
    ),
    Rule(
        "TG804", "ddp-data-not-sharded", W, "run",
        summary="every rank trains on the same samples (no DistributedSampler or equivalent sharding)",
        fix="give the training DataLoader a DistributedSampler (shuffle=True, and sampler.set_epoch(epoch) every epoch) or otherwise shard the data by rank",
        seen_when="the second training step, when every rank trained on the same samples at both of the first two steps",
    ),
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
