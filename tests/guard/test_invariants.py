"""The guard's promises: it never changes the run, never crashes it, and undoes itself."""

from __future__ import annotations

import json
import runpy
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainguard
from trainguard.runtime.api import active_session
from trainguard.runtime.probes.modules import ModuleProbe

LBFGS_FIXTURE = Path(__file__).parents[1] / "runtime" / "fixtures" / "silent_lbfgs_closure.py"


def _train(guarded: bool, steps: int = 12) -> dict[str, torch.Tensor]:
    """A loop touching every probe: dropout, BatchNorm, shuffled loader, bf16 autocast,
    GradScaler, clipping after unscale_, a scheduler, validation, a checkpoint round trip."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(96, 10), torch.randint(0, 4, (96,)))
    loader = DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1))
    model = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3)
    scaler = torch.amp.GradScaler("cpu")
    if guarded:
        trainguard.watch(echo=False)
    try:
        step = 0
        while step < steps:
            model.train()
            for x, y in loader:
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = F.cross_entropy(model(x), y)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
            model.eval()
            with torch.no_grad():
                model(data.tensors[0])
        findings = trainguard.unwatch() if guarded else []
    finally:
        if guarded and active_session() is not None:
            trainguard.unwatch()
    assert findings == [], [f.code for f in findings]
    state = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    for index, value in optimizer.state_dict()["state"].items():
        for name, tensor in value.items():
            if isinstance(tensor, torch.Tensor):
                state[f"optim.{index}.{name}"] = tensor.clone()
    return state


def test_guard_leaves_weights_bitwise_identical() -> None:
    plain, guarded = _train(False), _train(True)
    assert plain.keys() == guarded.keys()
    for name in plain:
        assert torch.equal(plain[name], guarded[name]), name


def _train_lbfgs(guarded: bool) -> dict[str, torch.Tensor]:
    """The LBFGS fixture (optimizer.step(closure), a closure the guard wraps and LBFGS calls many
    times a step), run as a script; its final weights."""
    torch.manual_seed(0)
    with trainguard.watch(echo=False) if guarded else nullcontext() as handle:
        script = runpy.run_path(str(LBFGS_FIXTURE), run_name="__main__")
        assert handle is None or handle.findings == []
    return {name: value.clone() for name, value in script["model"].state_dict().items()}


def test_a_closure_step_is_bitwise_identical_under_the_guard() -> None:
    plain, guarded = _train_lbfgs(False), _train_lbfgs(True)
    assert all(torch.equal(plain[name], guarded[name]) for name in plain)


def _patchable() -> dict[str, object]:
    """The functions the guard wraps (one of each kind), as they are right now."""
    return {
        "cross_entropy": F.cross_entropy,
        "backward": torch.autograd.backward,
        "load": torch.load,
        "clip": nn.utils.clip_grad_norm_,
        "optimizer_init": torch.optim.Optimizer.__init__,
        "loader_iter": DataLoader.__iter__,
        "scheduler_step": torch.optim.lr_scheduler.LRScheduler.step,
        "compile": torch.compile,
    }



@pytest.mark.parametrize(
    "name",
    ["fire_zero_grad_before_step_keep_tensors", "fire_zero_grad_before_step_model_zero_grad", "fire_clip_after_step_norm_after_update"],
)
def test_wrapped_zero_grad_and_clip_leave_weights_bitwise_identical(name: str) -> None:
    # zero_grad is wrapped to see what it cleared, and a clip's parameters (a generator here) are
    # read into a list before the clip: the same tensors, the same updates.
    script = LBFGS_FIXTURE.parent / f"{name}.py"
    weights = []
    for guarded in (False, True):
        torch.manual_seed(0)
        with trainguard.watch(echo=False) if guarded else nullcontext() as handle:
            model = runpy.run_path(str(script), run_name="__main__")["model"]
            assert handle is None or handle.findings
        weights.append({key: value.clone() for key, value in model.state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key

def test_uninstall_restores_every_patch_and_hook() -> None:
    from torch.nn.modules import module as module_hooks
    from torch.optim import optimizer as optimizer_hooks

    before = _patchable()
    model = nn.Linear(3, 1)
    with trainguard.watch(echo=False):
        model(torch.randn(2, 3)).sum().backward()
        # torch.compile itself is wrapped only while torch._dynamo is not yet loaded.
        assert all(_patchable()[name] is not before[name] for name in before if name != "compile")
    assert _patchable() == before
    assert not module_hooks._global_forward_hooks and not module_hooks._global_forward_pre_hooks
    assert not optimizer_hooks._global_optimizer_pre_hooks and not optimizer_hooks._global_optimizer_post_hooks
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert active_session() is None


def test_fault_inside_a_detector_is_contained_and_reported_once(monkeypatch, capsys) -> None:
    from trainguard.runtime.detectors.stale_gradients import StaleGradients

    def broken(self, event):  # a bug in a detector
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(StaleGradients, "on_step_start", broken)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with trainguard.watch(echo=False) as handle:
        for _ in range(3):
            optimizer.zero_grad()
            model(torch.randn(4, 3)).sum().backward()
            optimizer.step()
        errors = handle.session.internal_errors
    assert list(errors) == ["StaleGradients.on_step_start"]
    assert "ZeroDivisionError: boom" in errors["StaleGradients.on_step_start"]
    assert capsys.readouterr().err.count("internal error") == 1


def test_users_own_exception_passes_through_unchanged() -> None:
    model = nn.Linear(3, 2)
    with trainguard.watch(echo=False):
        try:
            F.cross_entropy(model(torch.randn(4, 3)), torch.tensor([0, 1, 2, 5]))
        except IndexError as error:
            raised = error
        else:
            raised = None
    assert isinstance(raised, IndexError)


class _Interrupt(BaseException):
    """Like KeyboardInterrupt: PyTorch runs no forward post-hook for it."""


class _Interruptible(nn.Module):
    def __init__(self, hidden_layers: list[nn.Module]) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)
        self.hidden_layers = hidden_layers  # a plain list: not registered (TG301) when not empty
        self.interrupt = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        if self.interrupt:
            self.interrupt = False
            raise _Interrupt
        for layer in self.hidden_layers:
            h = layer(h)
        return self.head(h)


def _train_through_interrupts(hidden_layers: list[nn.Module]) -> list[str]:
    """Forwards cut short by a BaseException the script catches (in the model's very first call,
    later, and in a steady-state step), then training goes on, through a window; the codes of
    the findings."""
    torch.manual_seed(0)
    model, other = _Interruptible(hidden_layers), nn.Sequential(nn.Linear(8, 3))
    optimizer = torch.optim.SGD([*model.parameters(), *other.parameters()], lr=0.1)
    with trainguard.watch(echo=False) as handle:
        for step in range(55):
            x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
            if step in (0, 12, 35):
                model.interrupt = True
                with pytest.raises(_Interrupt):
                    model(x)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y) + F.cross_entropy(other(x), y)
            loss.backward()
            optimizer.step()
        (modules,) = [probe for probe in handle.session.probes if isinstance(probe, ModuleProbe)]
        assert not modules.in_root_call  # no call cut short is still counted as running
        return [f.code for f in handle.findings]


def test_a_forward_cut_short_by_a_base_exception_leaves_no_false_finding() -> None:
    # The calls it cut short once stayed on the probe's stack: the second model's layers were
    # then reported as unregistered modules of the first.
    assert _train_through_interrupts([]) == []


def test_a_forward_cut_short_by_a_base_exception_still_lets_a_real_bug_show() -> None:
    assert _train_through_interrupts([nn.Linear(16, 16)]) == ["TG301"]


def test_strict_stops_at_the_first_error_finding() -> None:
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = 0
    with trainguard.watch(echo=False, strict=True):
        try:
            for _ in range(5):
                F.cross_entropy(model(torch.randn(4, 3)), torch.tensor([0, 1, 1, 0])).backward()
                optimizer.step()
                steps += 1
        except trainguard.GuardStop as stop:
            assert stop.finding.code == "TG101"
    assert steps == 1  # step 0 ran; step 1 was stopped before it updated anything


def test_watch_inside_a_guarded_process_reuses_the_session() -> None:
    with trainguard.watch(echo=False) as outer:
        with trainguard.watch(echo=False) as inner:
            assert inner.session is outer.session
        assert active_session() is outer.session
    assert active_session() is None


def test_select_and_ignore_choose_detectors() -> None:
    with trainguard.watch(echo=False, select="TG1", ignore="stale-gradients") as handle:
        codes = {d.code for d in handle.session.detectors}
    assert codes and all(code.startswith("TG1") for code in codes) and "TG101" not in codes


def _train_compiled(guarded: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    handle = trainguard.watch(echo=False) if guarded else None
    try:
        compiled = torch.compile(model)
        for _ in range(3):
            optimizer.zero_grad()
            F.cross_entropy(compiled(x), y).backward()
            optimizer.step()
        with torch.no_grad():
            model.eval()
            compiled(x)
    finally:
        findings = trainguard.unwatch() if handle is not None else []
    assert findings == [], [f.code for f in findings]
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_torch_compile_runs_guarded_without_warnings_and_identical_weights() -> None:
    import warnings

    plain = _train_compiled(False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        guarded = _train_compiled(True)
    assert [str(w.message) for w in caught] == []
    assert all(torch.equal(plain[k], guarded[k]) for k in plain)


class _UnusualGradients(nn.Module):
    """A sparse embedding (sparse gradients) and a complex weight (complex gradients)."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(50, 8, sparse=True)
        self.phase = nn.Parameter(torch.randn(8, dtype=torch.cfloat))
        self.head = nn.Linear(8, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head((self.embedding(tokens) * self.phase).abs())


def _train_unusual(guarded: bool, optimizer_kind: str, metrics: str) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = _UnusualGradients()
    if optimizer_kind == "sgd":
        optimizers = [torch.optim.SGD(model.parameters(), lr=0.1)]
    else:  # SparseAdam takes the sparse gradients, Adam the dense ones
        dense = [model.phase, *model.head.parameters()]
        optimizers = [torch.optim.SparseAdam(model.embedding.parameters()), torch.optim.Adam(dense)]
    tokens, labels = torch.randint(0, 50, (16, 4)), torch.randint(0, 3, (16, 4))
    with trainguard.watch(echo=True, metrics=metrics) if guarded else nullcontext() as handle:
        for _ in range(25):  # past the first detailed window: sampled measurements too
            for optimizer in optimizers:
                optimizer.zero_grad()
            F.cross_entropy(model(tokens).flatten(0, 1), labels.flatten()).backward()
            for optimizer in optimizers:
                optimizer.step()
        assert handle is None or (handle.findings == [] and handle.session.internal_errors == {})
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("optimizer_kind", ["sgd", "sparse_adam"])
def test_sparse_and_complex_gradients_are_measured_silently_and_bitwise_identical(optimizer_kind, tmp_path, capsys) -> None:
    metrics = tmp_path / "metrics.jsonl"
    plain = _train_unusual(False, optimizer_kind, str(metrics))
    guarded = _train_unusual(True, optimizer_kind, str(metrics))
    assert capsys.readouterr().err == ""
    assert all(torch.equal(a, b) for a, b in zip(plain, guarded))
    norms = [json.loads(line).get("layer_grad_norms") or {} for line in metrics.read_text().splitlines()]
    measured = set().union(*norms)
    assert {"embedding.weight", "phase"} <= measured  # the sparse and the complex gradient were measured


def test_torch_load_called_by_torch_itself_is_not_the_users(tmp_path) -> None:
    # dist.all_gather_object unpickles what the ranks sent with torch.load(weights_only=False).
    path = tmp_path / "object.pt"
    torch.save({"step": 1}, path)
    inside_torch = {"__name__": "torch.distributed.distributed_c10d", "torch": torch, "path": path}
    with trainguard.watch(echo=False) as handle:
        exec("torch.load(path, weights_only=False)", inside_torch)
        assert handle.findings == []
        torch.load(path, weights_only=False)
        assert [f.code for f in handle.findings] == ["TG701"]
