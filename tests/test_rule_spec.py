"""One home per rule: every face takes what it says about a rule from the rule's catalogue entry.

The fix text of the runtime detectors and the lint rules, the SARIF rule metadata and the rule
tables of docs/rules.md and the README are derived from `trainguard.catalogue.RULES`; these
tests fail when one of them is written by hand again or falls out of date.
"""

from __future__ import annotations

import ast
import inspect
import re
import string
from dataclasses import fields
from pathlib import Path

import pytest

from trainguard import rule_tables
from trainguard.catalogue import RULES, Rule
from trainguard.lint.rules import LintRule, load_rules
from trainguard.runtime.detectors import Detector, load_detectors
from trainguard.runtime.thresholds import Thresholds

ROOT = Path(__file__).resolve().parents[1]
RULE_MODULES = sorted([*(ROOT / "trainguard" / "runtime" / "detectors").glob("*.py"), *(ROOT / "trainguard" / "lint" / "rules").glob("*.py")])


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_fix_is_one_sentence(rule: Rule) -> None:
    assert rule.fix and rule.fix[0].islower() and not rule.fix.endswith(".")
    assert re.search(r"[.;:]\s+[A-Z`]", rule.fix) is None, f"{rule.code}: a second sentence in {rule.fix!r}"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_runtime_rules_say_when_they_are_seen_and_lint_only_rules_do_not(rule: Rule) -> None:
    assert bool(rule.seen_when) == rule.runs


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_thresholds_a_rule_names_exist_and_cover_its_seen_when(rule: Rule) -> None:
    known = {field.name for field in fields(Thresholds)}
    assert set(rule.thresholds) <= known
    placeholders = {name for _, name, _, _ in string.Formatter().parse(rule.seen_when) if name}
    assert placeholders <= set(rule.thresholds)


def test_every_threshold_is_read_by_a_rule() -> None:
    named = {name for rule in RULES for name in rule.thresholds}
    assert {field.name for field in fields(Thresholds)} == named


def test_seen_when_shows_the_thresholds_defaults() -> None:
    exploding = next(rule for rule in RULES if rule.slug == "exploding-gradients")
    assert f"growing {Thresholds().growth_factor:g}x while" in rule_tables.seen_when(exploding)
    patience = next(rule for rule in RULES if rule.slug == "val-loss-divergence")
    assert f"for {Thresholds().val_patience:g} evaluations" in rule_tables.seen_when(patience)


@pytest.mark.parametrize("path", RULE_MODULES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_no_detector_or_lint_rule_writes_its_own_fix(path: Path) -> None:
    """A `fix = ...`, `fixes = ...` or `fix=...` in a rule module would be a second fix text."""
    tree = ast.parse(path.read_text("utf-8"))
    own = [
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
            isinstance(target, ast.Name) and target.id in ("fix", "fixes")
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        ))
        or (isinstance(node, ast.keyword) and node.arg == "fix")
    ]
    assert own == [], f"{path.name} sets a fix of its own on lines {own}: the catalogue entry's fix is the one"


def test_reporting_takes_no_fix_argument() -> None:
    assert "fix" not in inspect.signature(Detector.report).parameters
    assert "fix" not in inspect.signature(LintRule.report).parameters


def test_every_rule_with_a_face_has_a_module_of_that_face() -> None:
    detected = {cls.code for cls in load_detectors()}
    linted = {code for cls in load_rules() for code in cls.codes}
    assert detected == {rule.code for rule in RULES if rule.runs}
    assert linted == {rule.code for rule in RULES if rule.lints}


# Modules holding a small family of rules, named after what the family judges.
RULE_FAMILIES = {
    "model_modes": {"TG201", "TG202", "TG203"},
    "non_finite_values": {"TG107", "TG306", "TG503"},
    "probabilities_into_logit_losses": {"TG302", "TG303"},
    "data_order": {"TG501", "TG502"},
}


def test_rule_modules_are_named_after_the_rule_or_family_they_hold() -> None:
    slugs = {rule.code: rule.slug.replace("-", "_") for rule in RULES}
    held: dict[tuple[str, str], set[str]] = {}
    for cls in load_detectors():
        held.setdefault(("runtime", cls.__module__.rsplit(".", 1)[-1]), set()).add(cls.code)
    for cls in load_rules():
        held.setdefault(("lint", cls.__module__.rsplit(".", 1)[-1]), set()).update(cls.codes)
    misnamed = {
        f"{face}/{module}.py": sorted(codes)
        for (face, module), codes in held.items()
        if not (codes <= RULE_FAMILIES.get(module, set()) or (len(codes) == 1 and slugs[next(iter(codes))] == module))
    }
    assert misnamed == {}, "name a rule module after its rule's slug, or its family in RULE_FAMILIES"


def test_committed_rule_tables_are_the_generated_ones() -> None:
    assert rule_tables.stale_files() == [], "run: python -m trainguard.rule_tables --write"


def copy_with_a_row_missing(root: Path) -> None:
    """The files with tables, copied under `root` with the last row of each table left out."""
    for path in rule_tables.TABLES:
        text = re.sub(r"\n\|[^\n]*(\n<!-- /rule-table:)", r"\1", (ROOT / path).read_text("utf-8"))
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, "utf-8")


def test_a_stale_table_is_found_and_rewritten(tmp_path: Path) -> None:
    copy_with_a_row_missing(tmp_path)
    assert sorted(rule_tables.stale_files(tmp_path)) == sorted(rule_tables.TABLES)
    text = (tmp_path / "README.md").read_text("utf-8")
    assert rule_tables.generated("README.md", text) == (ROOT / "README.md").read_text("utf-8")


def test_tables_without_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="rule-table:index"):
        rule_tables.replace_table("no markers here\n", "index", "| table |")


def test_the_table_commands_check_and_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    copy_with_a_row_missing(tmp_path)
    monkeypatch.setattr(rule_tables, "ROOT", tmp_path)
    assert rule_tables.main([]) == 1 and "README.md" in capsys.readouterr().err
    assert rule_tables.main(["--write"]) == 0
    assert rule_tables.main([]) == 0
    assert (tmp_path / "README.md").read_text("utf-8") == (ROOT / "README.md").read_text("utf-8")


def test_sarif_rule_metadata_comes_from_the_catalogue(tmp_path: Path) -> None:
    import io
    import json

    from trainguard.lint.engine import LintResult
    from trainguard.lint.formats import write_sarif

    stream = io.StringIO()
    write_sarif(LintResult(findings=[], files=0, errors=[]), stream)
    described = json.loads(stream.getvalue())["runs"][0]["tool"]["driver"]["rules"]
    linted = [rule for rule in RULES if rule.lints]
    assert [entry["id"] for entry in described] == [rule.code for rule in linted]
    for entry, rule in zip(described, linted):
        assert entry["name"] == rule.slug and entry["shortDescription"]["text"] == rule.summary
        assert entry["help"]["text"] == f"Fix: {rule.fix}."
        assert entry["helpUri"].endswith("/" + rule.doc_path) and (ROOT / rule.doc_path).is_file()


def test_new_rule_script_adds_the_spec_page_modules_and_fixtures(tmp_path: Path) -> None:
    """`scripts/new_rule.py` on a copy of the repository: everything a rule needs, tables regenerated."""
    import shutil
    import subprocess
    import sys

    for folder in ("trainguard", "scripts"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for path in rule_tables.TABLES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    for folder in ("tests/runtime/fixtures", "tests/lint/fixtures/fire", "tests/lint/fixtures/silent"):
        (tmp_path / folder).mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    created = subprocess.run(
        [sys.executable, "scripts/new_rule.py", "TG199", "made-up-rule", "--where", "both", "--severity", "error",
         "--summary", "a rule for this test", "--fix", "do the right thing", "--seen-when", "never, in a real run"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert created.returncode == 0, created.stderr
    check = """
from trainguard.catalogue import RULES, get_rule
from trainguard.lint.rules import load_rules
from trainguard.runtime.detectors import load_detectors
from trainguard import rule_tables
rule = get_rule("made-up-rule")
assert (rule.code, rule.severity.value, rule.where, rule.fix) == ("TG199", "error", "both", "do the right thing")
assert [r.code for r in RULES] == sorted(r.code for r in RULES)
assert "MadeUpRule" in [cls.__name__ for cls in load_detectors()]
assert "MadeUpRule" in [cls.__name__ for cls in load_rules()]
assert rule_tables.stale_files() == []
assert "| TG199 | made-up-rule | never, in a real run |" in open("README.md").read()
assert rule.docs().startswith("# TG199 made-up-rule")
"""
    checked = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    for fixture in ("tests/runtime/fixtures/fire_made_up_rule.py", "tests/runtime/fixtures/silent_made_up_rule.py",
                    "tests/lint/fixtures/fire/tg199_made_up_rule.py", "tests/lint/fixtures/silent/made_up_rule.py"):
        compile((tmp_path / fixture).read_text(), fixture, "exec")
    assert "# expect: TG199 step=0" in (tmp_path / "tests/runtime/fixtures/fire_made_up_rule.py").read_text()
    again = subprocess.run([sys.executable, "scripts/new_rule.py", "TG199", "other-slug", "--where", "lint", "--summary", "s", "--fix", "f"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already in the catalogue" in again.stderr
