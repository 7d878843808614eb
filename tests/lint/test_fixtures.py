"""Every rule on realistic scripts: must-flag fixtures (exact code and line) and tricky correct ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainguard.catalogue import RULES, get_rule
from trainguard.lint.config import LintConfig
from trainguard.lint.engine import lint_paths, lint_source

FIXTURES = Path(__file__).parent / "fixtures"
FIRE = sorted((FIXTURES / "fire").glob("*.py"))
SILENT = sorted((FIXTURES / "silent").glob("*.py"))
# Projects of several files (a training script importing its model module): one folder each.
FIRE_PROJECTS = sorted(path for path in (FIXTURES / "fire").iterdir() if path.is_dir() and not path.name.startswith("_"))
SILENT_PROJECTS = sorted(path for path in (FIXTURES / "silent").iterdir() if path.is_dir() and not path.name.startswith("_"))
EXPECT = re.compile(r"#\s*expect:\s*([A-Z0-9, ]+)")


def expected(path: Path) -> set[tuple[str, int]]:
    """(code, line) pairs from `# expect: TG101` comments."""
    found = set()
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        match = EXPECT.search(line)
        if match:
            found |= {(code.strip(), number) for code in match.group(1).split(",") if code.strip()}
    return found


def findings(path: Path) -> set[tuple[str, int]]:
    result = lint_source(path.read_text("utf-8"), path.name)
    assert not result.errors, result.errors
    # The fix is the catalogue's, the one the runtime guard prints for the same rule.
    assert all(finding.fix == get_rule(finding.code).fix for finding in result.findings)
    return {(finding.code, finding.line) for finding in result.findings}


@pytest.mark.parametrize("path", FIRE, ids=[p.stem for p in FIRE])
def test_fire_fixture_reports_exactly_its_expected_findings(path: Path) -> None:
    wanted = expected(path)
    assert wanted, f"{path.name} has no `# expect:` comment"
    assert findings(path) == wanted


@pytest.mark.parametrize("path", SILENT, ids=[p.stem for p in SILENT])
def test_correct_fixture_stays_silent(path: Path) -> None:
    assert findings(path) == set()


def project_findings(folder: Path) -> set[tuple[str, str, int]]:
    """(file name, code, line) of linting the folder as the command line does (files beside each other)."""
    result = lint_paths([folder], LintConfig(root=folder))
    assert not result.errors, result.errors
    assert all(finding.fix == get_rule(finding.code).fix for finding in result.findings)
    return {(Path(finding.path).name, finding.code, finding.line) for finding in result.findings}


@pytest.mark.parametrize("folder", FIRE_PROJECTS, ids=[p.name for p in FIRE_PROJECTS])
def test_fire_project_reports_exactly_its_expected_findings(folder: Path) -> None:
    wanted = {(path.name, code, line) for path in sorted(folder.glob("*.py")) for code, line in expected(path)}
    assert wanted, f"{folder.name} has no `# expect:` comment"
    assert project_findings(folder) == wanted


@pytest.mark.parametrize("folder", SILENT_PROJECTS, ids=[p.name for p in SILENT_PROJECTS])
def test_correct_project_stays_silent(folder: Path) -> None:
    assert project_findings(folder) == set()


def test_a_project_file_linted_alone_still_sees_its_sibling_module() -> None:
    """`trainguard lint train.py` (the model module not named) follows `from model import GPT` too."""
    train = FIXTURES / "fire" / "tg101_project_model_in_sibling" / "train.py"
    assert {(f.code, f.line) for f in lint_source(train.read_text("utf-8"), str(train)).findings} == expected(train)
    assert lint_source(train.read_text("utf-8"), "train.py").findings == []  # not on disk: no sibling, nothing known


def test_every_static_rule_has_a_fixture_that_fires() -> None:
    covered = {code for path in FIRE for code, _ in expected(path)}
    assert {rule.code for rule in RULES if rule.lints} - covered == set()


def test_findings_carry_the_catalogue_data_and_a_column() -> None:
    result = lint_source((FIXTURES / "fire" / "tg101_no_zero_grad.py").read_text(), "train.py")
    (finding,) = result.findings
    assert (finding.rule, finding.code, finding.severity.value) == ("stale-gradients", "TG101", "error")
    assert (finding.path, finding.line, finding.column, finding.step, finding.rank) == ("train.py", 16, 9, None, None)
    assert finding.fix and finding.evidence["optimizer"] == "optimizer"


def test_lowered_severity_for_redundant_log_softmax_and_partial_optimizer() -> None:
    severities = {
        (f.code, f.line): f.severity.value
        for name in ("tg302_softmax_then_view.py", "tg105_only_head_not_frozen.py")
        for f in lint_source((FIXTURES / "fire" / name).read_text(), name).findings
    }
    assert severities == {("TG302", 9): "error", ("TG302", 13): "info", ("TG105", 6): "warning"}


def test_unscored_train_mode_evaluation_is_an_info_and_a_scored_one_an_error() -> None:
    name = "tg201_gan_sample_unscored.py"
    severities = {(f.code, f.line): f.severity.value for f in lint_source((FIXTURES / "fire" / name).read_text(), name).findings}
    assert severities == {("TG201", 25): "info", ("TG201", 28): "error"}


def test_self_forward_inside_the_module_is_an_info_and_model_forward_a_warning() -> None:
    severities = {
        (f.path, f.line): f.severity.value
        for name in ("tg205_forward_called.py", "tg205_self_forward_in_guidance_helper.py")
        for f in lint_source((FIXTURES / "fire" / name).read_text(), name).findings
    }
    assert severities == {
        ("tg205_forward_called.py", 15): "info",
        ("tg205_forward_called.py", 20): "warning",
        ("tg205_self_forward_in_guidance_helper.py", 18): "info",
    }


SUPPRESSED = """\
import torch
model = torch.nn.Linear(2, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    model(torch.randn(1, 2)).sum().backward()
    optimizer.step()  # trainguard: ignore[{names}]
"""


@pytest.mark.parametrize("names, silenced", [("TG101", True), ("stale-gradients", True), ("TG1", True), ("TG110, stale-gradients", True), ("TG110", False)])
def test_suppression_comment_by_code_slug_or_prefix(names: str, silenced: bool) -> None:
    result = lint_source(SUPPRESSED.format(names=names))
    assert [f.code for f in result.findings] == ([] if silenced else ["TG101"])


def test_suppression_text_inside_a_string_does_not_count() -> None:
    source = SUPPRESSED.replace("  # trainguard: ignore[{names}]", '; note = "# trainguard: ignore[TG101]"')
    assert [f.code for f in lint_source(source).findings] == ["TG101"]


def test_aliases_of_torch_and_of_the_optimizer_are_followed() -> None:
    source = """\
import torch as t
from torch import optim as o
net = t.nn.Linear(2, 2)
sgd = o.SGD(net.parameters(), lr=0.1)
alias = sgd
for _ in range(3):
    net(t.randn(1, 2)).sum().backward()
    alias.step()
"""
    assert [(f.code, f.line) for f in lint_source(source).findings] == [("TG101", 8)]


def test_select_and_ignore_apply_to_lint_source() -> None:
    source = (FIXTURES / "fire" / "tg204_losses_kept.py").read_text()
    assert lint_source(source, select="TG1").findings == []
    assert {f.code for f in lint_source(source, ignore="graph-retained").findings} == set()


RUNTIME_SILENT = sorted((FIXTURES.parents[1] / "runtime" / "fixtures").glob("silent_*.py"))


@pytest.mark.parametrize("path", RUNTIME_SILENT, ids=[p.stem for p in RUNTIME_SILENT])
def test_runtime_guards_correct_scripts_stay_silent_under_lint(path: Path) -> None:
    """The runtime guard's must-stay-silent scripts are correct code: the linter must agree."""
    assert findings(path) == set()


LEGACY_CHECKPOINT = """\
import torch
from torch import nn
model = nn.Linear(2, 2)
optimizer = torch.optim.Adam(model.parameters())
torch.save({"model": model.state_dict(), "epoch": 3}, "legacy.pt")
"""


@pytest.mark.parametrize(
    "path, codes", [("train.py", ["TG702"]), ("tests/resume/make_checkpoints.py", []), ("test_resume.py", []), ("resume_test.py", [])]
)
def test_minimal_checkpoint_written_by_test_code_is_not_reported(path: str, codes: list[str]) -> None:
    """Tests write minimal (legacy) checkpoints on purpose; the same code in a training script is reported."""
    assert [f.code for f in lint_source(LEGACY_CHECKPOINT, path).findings] == codes


def test_a_file_that_imports_its_own_module_name_is_not_its_own_sibling(tmp_path: Path) -> None:
    """`from train import helper` inside train.py: the parse cache hands back the very tree being
    linted, so its findings stay its own (a sibling's nodes would be left to that file's lint)."""
    source = (FIXTURES / "fire" / "tg101_no_zero_grad.py").read_text("utf-8")
    (tmp_path / "train.py").write_text(source.replace("import torch\n", "import torch\nfrom train import loader\n", 1), "utf-8")
    (tmp_path / "other.py").write_text("from train import model\n", "utf-8")  # train.py also read as a sibling
    findings = lint_paths([tmp_path], LintConfig(root=tmp_path)).findings
    assert [(f.path.rsplit("/", 1)[-1], f.code, f.line) for f in findings] == [("train.py", "TG101", 17)]
