"""`trainguard.integrations.transformers.TrainguardCallback` in real Hugging Face Trainer runs of tiny
models built here from config objects (nothing downloaded): planted bugs the Trainer does not
prevent are reported in the model's forward, correct runs stay silent, findings reach the
transformers logger and the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from torch.utils.data import Dataset

from trainguard.integrations.transformers import LOGGER, TrainguardCallback
from trainguard.runtime.api import active_session
from trainguard.runtime.callsite import display_path

from .expect import assert_one_error_logged_and_reported, line_of, records_of

THIS_FILE = display_path(__file__)  # as findings show it


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


class TinyConfig(transformers.PretrainedConfig):
    model_type = "trainguard-tiny"

    def __init__(self, features: int = 8, hidden: int = 16, classes: int = 3, bug: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.features, self.hidden, self.classes, self.bug = features, hidden, classes, bug


class TinyClassifier(transformers.PreTrainedModel):
    """A user's own model; `config.bug` plants a mistake the Trainer does not prevent."""

    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.body = nn.Sequential(nn.Linear(config.features, config.hidden), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(config.hidden, config.classes)
        self.refine = [nn.Linear(config.classes, config.classes)] if config.bug == "plain-list" else []
        self.post_init()

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        logits = self.head(self.body(features))
        for layer in self.refine:
            logits = layer(logits)  # <plain-list>
        scores = logits.softmax(dim=-1) if self.config.bug == "softmax" else logits
        loss = None if labels is None else F.cross_entropy(scores, labels)  # <loss>
        return {"loss": loss, "logits": logits}


class Examples(Dataset):
    """Random examples, as the tiny custom model (`features`) or a text model (`input_ids`) takes them."""

    def __init__(self, size: int, text: bool) -> None:
        generator = torch.Generator().manual_seed(size)
        self.text = text
        self.inputs = torch.randint(0, 64, (size, 12), generator=generator) if text else torch.randn(size, 8, generator=generator)
        self.labels = torch.randint(0, 3, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        key = "input_ids" if self.text else "features"
        return {key: self.inputs[index], "labels": self.labels[index]}


def bert() -> transformers.PreTrainedModel:
    # initializer_range 0.2: at the default 0.02 a 16-wide attention is uniform and its query/key
    # gradients really do vanish (TG109 says so, rightly), which is not what this test is about.
    config = transformers.BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=3, initializer_range=0.2,
    )
    return transformers.BertForSequenceClassification(config)


def train(model: transformers.PreTrainedModel, callback: TrainguardCallback, tmp_path: Path, **arguments: Any) -> None:
    text = not isinstance(model, TinyClassifier)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=16, per_device_eval_batch_size=32,
        num_train_epochs=2, learning_rate=1e-2, eval_strategy="epoch", save_strategy="no", logging_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, max_grad_norm=1.0, seed=0, **arguments,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Examples(96, text), eval_dataset=Examples(32, text), callbacks=[callback],
    )
    trainer.train()


@pytest.mark.parametrize(
    ("make_model", "arguments"),
    [
        (lambda: TinyClassifier(TinyConfig()), {}),
        (lambda: TinyClassifier(TinyConfig()), {"gradient_accumulation_steps": 2, "bf16": True}),
        (bert, {}),
    ],
    ids=["custom-model", "custom-model-accumulation-bf16", "bert"],
)
def test_correct_training_is_silent(make_model: Any, arguments: dict[str, Any], tmp_path: Path) -> None:
    torch.manual_seed(0)
    callback = TrainguardCallback()
    train(make_model(), callback, tmp_path, **arguments)
    assert callback.findings == []
    assert active_session() is None


@pytest.mark.parametrize(("bug", "code", "marker"), [("softmax", "TG302", "loss"), ("plain-list", "TG301", "plain-list")])
def test_planted_bug_is_reported_in_the_model_forward(bug: str, code: str, marker: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    callback = TrainguardCallback()
    train(TinyClassifier(TinyConfig(bug=bug)), callback, tmp_path)
    assert [(f.code, f.path, f.line) for f in callback.findings] == [(code, THIS_FILE, line_of(__file__, marker))]


def test_findings_are_logged_and_written_to_the_report(tmp_path: Path) -> None:
    with records_of(LOGGER) as records:
        callback = TrainguardCallback(report=tmp_path / "report.json")
        train(TinyClassifier(TinyConfig(bug="softmax")), callback, tmp_path)
    assert LOGGER.name.startswith("transformers.")
    assert_one_error_logged_and_reported(
        records, tmp_path / "report.json", "TG302 softmax-before-cross-entropy", THIS_FILE, line_of(__file__, "loss")
    )
