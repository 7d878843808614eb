"""Row fingerprints (TG504, TG505, TG804) and the dataset indices the data probe attaches to batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import trainguard
from trainguard.runtime.api import active_session
from trainguard.runtime.events import LoaderBatch
from trainguard.runtime.fingerprints import MAX_COLUMNS, plain_indices, row_fingerprints


def test_equal_rows_share_a_fingerprint_and_different_rows_do_not() -> None:
    x = torch.randn(6, 3, 4)
    x[4] = x[1]
    labels = torch.tensor([0, 1, 2, 3, 1, 5])
    rows = row_fingerprints((x, labels))
    assert rows is not None and len(rows) == 6
    assert rows[4] == rows[1] and len(set(rows)) == 5
    # The label is part of the sample: the same input with another label is another row.
    assert row_fingerprints((x, labels + 1))[1] != rows[1]


def test_fingerprints_read_exact_bits_of_every_dtype_and_container() -> None:
    x = torch.randn(4, 5)
    for batch in (x.half(), x.bfloat16(), x.double(), torch.eye(4, 5) > 0, (x * 100).long(), {"input": x, "mask": x > 0}, [x, [x.int()]]):
        rows = row_fingerprints(batch)
        assert rows is not None and len(rows) == 4 and len(set(rows)) == 4, type(batch)
    nudged = x.clone()
    nudged[2, 3] = torch.nextafter(nudged[2, 3], torch.tensor(1e9))
    assert [a == b for a, b in zip(row_fingerprints(x), row_fingerprints(nudged))] == [True, True, False, True]
    assert row_fingerprints(x.t().contiguous().t()) == row_fingerprints(x)  # layout does not matter
    assert row_fingerprints("text") is None and row_fingerprints((torch.tensor(3.0),)) is None


def test_wide_rows_are_read_at_spread_columns() -> None:
    images = torch.randn(3, 3, 64, 64)  # 12,288 elements per row
    assert images[0].numel() > MAX_COLUMNS
    flipped = images.flip(-1)
    assert all(a != b for a, b in zip(row_fingerprints(images), row_fingerprints(flipped)))
    assert row_fingerprints(images) == row_fingerprints(images.clone())


def test_plain_indices_accepts_integer_kinds_and_refuses_keys() -> None:
    assert plain_indices([1, np.int64(2), torch.tensor(3)]) == [1, 2, 3]
    assert plain_indices(None) is None
    assert plain_indices(["a", "b"]) is None


@pytest.mark.parametrize(
    "options",
    [{}, {"num_workers": 2}, {"num_workers": 2, "persistent_workers": True}, {"batch_size": None}],
    ids=["main-process", "workers", "persistent-workers", "no-batching"],
)
def test_loader_batches_carry_the_dataset_indices_they_were_read_from(options: dict) -> None:
    dataset = TensorDataset(torch.randn(20, 2), torch.arange(20))
    loader = DataLoader(dataset, **{"batch_size": 4, "shuffle": True, **options})
    seen: list[LoaderBatch] = []
    trainguard.watch(echo=False)
    try:
        session = active_session()
        session._handlers["loader_batch"].append(seen.append)
        read = [targets.reshape(-1).tolist() for _ in range(2) for _, targets in loader]
    finally:
        trainguard.unwatch()
    assert [plain_indices(event.indices) for event in seen] == read


def test_fingerprints_are_taken_on_the_first_steps_and_evaluations_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Training batches are hashed on the first 20 steps (TG504), an evaluation loader's batches
    # on its first two passes (TG504's content pass, TG505's comparison); then never again.
    from trainguard.runtime import fingerprints

    hashed_at: list[int] = []
    original = fingerprints._hashes

    def counting(batch: object) -> list[torch.Tensor]:
        hashed_at.append(active_session().step)
        return original(batch)

    monkeypatch.setattr(fingerprints, "_hashes", counting)
    generator = torch.Generator().manual_seed(0)
    train_loader = DataLoader(TensorDataset(torch.randn(80, 4, generator=generator), torch.randint(0, 2, (80,), generator=generator)), batch_size=8, shuffle=True, generator=generator)
    val_loader = DataLoader(TensorDataset(torch.randn(16, 4, generator=generator), torch.randint(0, 2, (16,), generator=generator)), batch_size=8)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with trainguard.watch(echo=False) as watch:
        for epoch in range(6):
            for inputs, targets in train_loader:
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(inputs), targets).backward()
                optimizer.step()
            with torch.no_grad():
                for inputs, targets in val_loader:
                    model(inputs)
    assert watch.findings == []
    # Steps 0-19: one training batch each (TG504). The evaluation at step 10 (two batches): TG504's
    # content pass and TG505's first pass; at step 20: TG505's comparison. Later ones: nothing.
    assert sorted(hashed_at) == sorted([*range(20), *[10] * 4, 20, 20])
