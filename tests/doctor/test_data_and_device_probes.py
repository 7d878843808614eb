"""Data sanity, device parity, throughput and memory, each on its own: must fire, must stay silent
(and on a machine without a GPU, the GPU probes must say so)."""

from __future__ import annotations

import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, SubsetRandomSampler, TensorDataset

from tests.doctor.setups import CLASSES, MLP, digits, loader, make_setup, probe, rules
from trainguard.doctor import Verdict
from trainguard.doctor.probes import throughput


def _labels(data: TensorDataset, change) -> TensorDataset:  # type: ignore[no-untyped-def]
    points, labels = data.tensors
    return TensorDataset(points, change(labels))


def _points(data: TensorDataset, change) -> TensorDataset:  # type: ignore[no-untyped-def]
    points, labels = data.tensors
    return TensorDataset(change(points.clone()), labels)


# --- data sanity ----------------------------------------------------------------------------------

def test_data_sanity_passes_on_clean_data_with_a_class_table() -> None:
    result = probe("data-sanity", make_setup())
    assert result.verdict is Verdict.PASS and result.findings == []
    assert result.evidence["train_shuffled"] is True and result.evidence["val_shuffled"] is False
    assert result.table is not None and [row[0] for row in result.table.rows] == list(range(CLASSES))
    assert sum(row[1] for row in result.table.rows) == 256


def test_data_sanity_names_labels_off_by_one_class_with_the_fix() -> None:
    result = probe("data-sanity", make_setup(train_data=loader(_labels(digits(), lambda y: y + 1)), val_data=None))
    assert result.verdict is Verdict.FAIL
    (finding,) = result.findings
    assert finding.rule == "data-sanity" and finding.code == ""
    assert (finding.evidence["label_min"], finding.evidence["label_max"], finding.evidence["classes"]) == (1, CLASSES, CLASSES)
    assert finding.fix == "shift the labels to start at 0 (labels - 1)"


def test_data_sanity_names_non_finite_inputs() -> None:
    def poison(points: torch.Tensor) -> torch.Tensor:
        points[5, 2] = float("nan")
        points[9, 0] = float("inf")
        return points
    result = probe("data-sanity", make_setup(train_data=loader(_points(digits(), poison)), val_data=None))
    assert rules(result) == ["non-finite-inputs"]
    assert result.findings[0].evidence["non_finite"] == 2


def test_data_sanity_names_an_unshuffled_training_loader_only() -> None:
    result = probe("data-sanity", make_setup(train_data=loader(digits(), shuffle=False)))
    assert rules(result) == ["train-loader-not-shuffled"] and result.verdict is Verdict.WARN


def test_data_sanity_does_not_guess_the_order_of_a_bare_dataset() -> None:
    result = probe("data-sanity", make_setup(train_data=digits(), val_data=digits(64, seed=2)))
    assert result.verdict is Verdict.PASS and result.evidence["train_shuffled"] is None


def test_data_sanity_notes_a_shuffled_validation_loader_without_failing() -> None:
    result = probe("data-sanity", make_setup(val_data=loader(digits(64, seed=2), shuffle=True)))
    assert result.verdict is Verdict.PASS
    assert [finding.severity.value for finding in result.findings] == ["info"]


def test_data_sanity_names_samples_shared_by_train_and_validation() -> None:
    train = digits(256, seed=1)
    points, labels = train.tensors
    val = TensorDataset(torch.cat([points[:10], digits(54, seed=2).tensors[0]]), torch.cat([labels[:10], digits(54, seed=2).tensors[1]]))
    result = probe("data-sanity", make_setup(val_data=loader(val, shuffle=False)))
    assert rules(result) == ["data-sanity"] and result.findings[0].evidence["shared"] == 10


def test_data_sanity_reads_only_the_part_of_a_shared_dataset_each_sampler_reads() -> None:
    shared = digits(300)
    train = DataLoader(shared, batch_size=32, sampler=SubsetRandomSampler(range(200)))
    val = DataLoader(shared, batch_size=32, sampler=SubsetRandomSampler(range(200, 300)))
    result = probe("data-sanity", make_setup(train_data=train, val_data=val))
    assert result.verdict is Verdict.PASS and result.evidence["shared_train_val"] == 0
    assert (result.evidence["train_checked"], result.evidence["val_checked"]) == (200, 100)


def test_data_sanity_names_unnormalised_features() -> None:
    result = probe("data-sanity", make_setup(train_data=loader(_points(digits(), lambda x: x * 40 + 120)), val_data=None))
    assert rules(result) == ["data-sanity"] and "not normalised" in result.findings[0].message


def test_data_sanity_names_class_imbalance() -> None:
    points, labels = digits(512).tensors
    keep = (labels != 2) | (torch.arange(512) % 20 == 0)
    result = probe("data-sanity", make_setup(train_data=loader(TensorDataset(points[keep], labels[keep])), val_data=None))
    assert rules(result) == ["data-sanity"] and result.findings[0].evidence["imbalance"] > 10


def test_data_sanity_names_targets_of_the_wrong_dtype() -> None:
    result = probe("data-sanity", make_setup(train_data=loader(_labels(digits(), lambda y: y.int())), val_data=None))
    assert rules(result) == ["data-sanity"] and "int64" in result.findings[0].message


def test_data_sanity_names_a_regression_loss_on_class_labels() -> None:
    result = probe("data-sanity", make_setup(loss_fn=torch.nn.MSELoss(), val_data=None))
    assert rules(result) == ["regression-loss-on-class-labels"]


class SlowDataset(Dataset):
    """Clean samples, one millisecond each: the input pipeline is slower than a tiny model."""

    def __init__(self) -> None:
        self.data = digits(256)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):  # type: ignore[no-untyped-def]
        time.sleep(0.001)
        return self.data[index]


def test_data_sanity_reads_a_custom_dataset() -> None:
    result = probe("data-sanity", make_setup(train_data=loader(SlowDataset()), val_data=None))
    assert result.verdict is Verdict.PASS and result.evidence["train_checked"] == 256


class Stream(IterableDataset):
    """Samples that can only be iterated (no length, no indexing)."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(digits(256))


def test_probes_read_an_iterable_dataset() -> None:
    setup = make_setup(train_data=DataLoader(Stream(), batch_size=32), val_data=None)
    result = probe("data-sanity", setup)
    assert result.verdict is Verdict.PASS and result.evidence["train_checked"] == 256
    assert result.evidence["train_shuffled"] is None  # an iterable's order is its own business
    assert probe("overfit-batch", setup).verdict is Verdict.PASS


# --- throughput -----------------------------------------------------------------------------------

def test_throughput_names_a_slow_input_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throughput, "WINDOW", 0.2)
    result = probe("throughput", make_setup(train_data=loader(SlowDataset())), budget=8)
    assert rules(result) == ["throughput"] and result.evidence["bottleneck"] == "input pipeline"


class SlowModel(MLP):
    """Five milliseconds a batch: far slower than reading 32 samples from a TensorDataset."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.005)
        return super().forward(x)


def test_throughput_names_the_model_as_bottleneck_and_skips_compile_over_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throughput, "WINDOW", 0.2)
    result = probe("throughput", make_setup(model=SlowModel()), budget=8)
    assert result.verdict is Verdict.PASS and result.evidence["bottleneck"] == "model"
    assert result.table is not None
    rows = {row[0]: row for row in result.table.rows}
    assert rows["eager fp32"][1] > 0 and rows["autocast bf16"][1] > 0
    assert rows["torch.compile"][3].startswith("skipped:") and "budget" in rows["torch.compile"][3]


class HangsUnderAutocast(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled("cpu"):
            time.sleep(5)  # past the 2 s budget
        return super().forward(x)


def test_throughput_keeps_what_it_measured_when_the_budget_runs_out_mid_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._dynamo  # noqa: F401  (the first optimizer imports it: seconds that are not the measurement's)

    monkeypatch.setattr(throughput, "WINDOW", 0.2)
    result = probe("throughput", make_setup(model=HangsUnderAutocast()), budget=2)
    assert result.table is not None and "stopped after" in result.summary and "the time budget ran out" in result.summary
    rows = {row[0]: row for row in result.table.rows}
    assert rows["loader alone"][1] > 0 and rows["eager fp32"][1] > 0  # measured before the hang: kept
    assert rows["autocast bf16"][3].startswith("stopped:") and "torch.compile" not in rows
    assert result.verdict in (Verdict.PASS, Verdict.WARN) and result.evidence["bottleneck"] in ("model", "input pipeline")


# --- GPU probes -----------------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the verdict without a GPU")
@pytest.mark.parametrize(("name", "reason"), [("device-parity", "no GPU"), ("memory", "not measured on the CPU")])
def test_gpu_probes_say_why_they_skip_without_a_gpu(name: str, reason: str) -> None:
    result = probe(name, make_setup())
    assert result.verdict is Verdict.SKIP and reason in result.summary


class DeviceDependent(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * (1.5 if x.is_cuda else 1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_parity_on_a_gpu() -> None:
    assert probe("device-parity", make_setup()).verdict is Verdict.PASS
    assert rules(probe("device-parity", make_setup(model=DeviceDependent()))) == ["device-parity"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_memory_on_a_gpu() -> None:
    result = probe("memory", make_setup())
    assert result.verdict is Verdict.PASS and result.table is not None
    peaks = [row[1] for row in result.table.rows]
    assert [row[0] for row in result.table.rows] == [16, 32, 64, 128] and all(peak > 0 for peak in peaks)
