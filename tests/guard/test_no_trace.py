"""The guard leaves no trace on the user's objects: a watched model, optimizer, loader or scaler
copies, pickles, saves, scripts and prints exactly as an unwatched one."""

from __future__ import annotations

import copy
import io
import pickle
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainguard
from trainguard.runtime.api import active_session


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _objects() -> dict[str, Any]:
    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = TensorDataset(torch.randn(32, 6), torch.randint(0, 3, (32,)))
    return {
        "model": model,
        "optimizer": optimizer,
        "scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=2),
        "scaler": torch.amp.GradScaler("cpu"),
        "loader": DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(1)),
    }


def _train(objects: dict[str, Any]) -> None:
    """Forward, backward and step through every watched kind of object, then an evaluation."""
    model, optimizer, scaler = objects["model"], objects["optimizer"], objects["scaler"]
    for x, y in objects["loader"]:
        optimizer.zero_grad()
        scaler.scale(F.cross_entropy(model(x), y)).backward()
        scaler.step(optimizer)
        scaler.update()
        objects["scheduler"].step()
    model.eval()
    with torch.no_grad():
        model(torch.randn(4, 6))
    model.train()


def _watched() -> dict[str, Any]:
    """Objects trained under a guard that is still installed (the caller unwatches)."""
    trainguard.watch(echo=False)
    objects = _objects()
    _train(objects)
    return objects


def _unwatched() -> dict[str, Any]:
    objects = _objects()
    _train(objects)
    return objects


_MODULE_HOOKS = (
    "_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)


def _traces(model: nn.Module) -> list[tuple[str, Any]]:
    """Everything a hook or attribute could hide in: each module's attribute names and hook
    dictionaries, each parameter's hooks and attributes."""
    found: list[tuple[str, Any]] = []
    for name, module in model.named_modules():
        found.append((f"{name}.__dict__", sorted(vars(module))))
        found.extend((f"{name}.{hooks}", dict(getattr(module, hooks))) for hooks in _MODULE_HOOKS)
    for name, param in model.named_parameters():
        found.append((f"{name} hooks", (param._backward_hooks, param._post_accumulate_grad_hooks)))
        found.append((f"{name}.__dict__", sorted(vars(param))))
    return found


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    one, other = a.state_dict(), b.state_dict()
    return one.keys() == other.keys() and all(torch.equal(one[k], other[k]) for k in one)


def test_deepcopy_of_a_watched_model_after_a_step_carries_no_guard() -> None:
    plain = _unwatched()["model"]
    try:
        model = _watched()["model"]
        copied = copy.deepcopy(model)
        assert _same_state(copied, model) and _same_state(copied, plain)
        copied(torch.randn(4, 6)).sum().backward()  # the copy runs and trains like any model
    finally:
        trainguard.unwatch()
    assert _traces(copied) == _traces(plain)


def _save_and_load(model: nn.Module) -> nn.Module:
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_torch_save_and_load_of_a_watched_model() -> None:
    plain = _save_and_load(_unwatched()["model"])
    try:
        loaded = _save_and_load(_watched()["model"])  # saved and loaded while watched
    finally:
        trainguard.unwatch()
    assert _traces(loaded) == _traces(plain)
    assert _same_state(loaded, plain)


def test_pickle_round_trip_of_every_watched_object() -> None:
    try:
        objects = _watched()
        round_trips = {name: pickle.loads(pickle.dumps(value)) for name, value in objects.items() if name != "loader"}
        copies = {name: copy.deepcopy(value) for name, value in objects.items()}
    finally:
        trainguard.unwatch()
    assert _same_state(round_trips["model"], objects["model"])
    assert round_trips["optimizer"].state_dict()["param_groups"] == objects["optimizer"].state_dict()["param_groups"]
    assert round_trips["scaler"].state_dict() == objects["scaler"].state_dict()
    assert round_trips["scheduler"].state_dict() == objects["scheduler"].state_dict()
    assert len(copies["loader"]) == len(objects["loader"])


def test_state_dict_repr_and_hooks_of_a_watched_model_are_those_of_an_unwatched_one() -> None:
    plain = _unwatched()["model"]
    try:
        model = _watched()["model"]
        during = (repr(model), _traces(model))
    finally:
        trainguard.unwatch()
    assert during[0] == repr(plain)
    # While watched, only the sample parameter's gradient hook exists (an optimizer's, removed
    # with the guard); the modules themselves carry nothing.
    assert [t for t in during[1] if not t[0].endswith(" hooks")] == [t for t in _traces(plain) if not t[0].endswith(" hooks")]
    assert _traces(model) == _traces(plain)
    assert _same_state(model, plain)


def test_jit_script_and_trace_of_a_watched_model() -> None:
    try:
        model = _watched()["model"].eval()
        x = torch.randn(5, 6)
        scripted = torch.jit.script(model)
        traced = torch.jit.trace(model, x)
        expected = model(x)
        assert torch.equal(scripted(x), expected) and torch.equal(traced(x), expected)
    finally:
        trainguard.unwatch()


class FunctionalDropoutNet(nn.Module):
    """Functional dropout and attention dropout: what TG206's dropout watch looks at."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(6, 18)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=0.1 if self.training else 0.0)
        return F.dropout(y, 0.2, training=self.training)


def test_jit_script_of_a_model_whose_eval_calls_ran_under_the_dropout_watch() -> None:
    # The watch patches nothing: scripting resolves F.dropout and the attention to PyTorch's own.
    try:
        trainguard.watch(echo=False)
        model = FunctionalDropoutNet().eval()
        x = torch.randn(2, 4, 6)
        with torch.no_grad():
            model(x)  # the model is found at its first call,
            expected = model(x)  # and its next eval-mode calls in a detailed window run under the watch
        (probe,) = [p for p in active_session().probes if type(p).__name__ == "ModuleProbe"]
        assert probe._dropout_watched == {id(model): 1}
        scripted = torch.jit.script(model)
        assert torch.equal(scripted(x), expected) and torch.equal(model(x), expected)
        assert F.dropout is torch.nn.functional.dropout and F.dropout.__module__ == "torch.nn.functional"
    finally:
        trainguard.unwatch()


def test_model_classes_are_restored_when_the_guard_is_removed() -> None:
    try:
        model = _watched()["model"]
        assert "__call__" in vars(Net)  # roots are reported through their class, not the instance
    finally:
        trainguard.unwatch()
    assert "__call__" not in vars(Net)
    assert type(model).__call__ is nn.Module.__call__
