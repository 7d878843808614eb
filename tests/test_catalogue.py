"""The rule catalogue: its invariants, the page of documentation shipped for every rule, and the
`trainguard rules` command that prints them.

Tests that go through `trainguard.cli` (the `python -m trainguard` subprocesses and `main()`) need
every module in `cli.VERB_MODULES` to import; the page-rendering test calls
`trainguard.rules_command` directly.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainguard.catalogue import RULES, Rule, RuleSelection, UnknownRuleError, get_rule, match_rules, split_names
from trainguard.findings import Severity

ROOT = Path(__file__).resolve().parents[1]
RULE_PAGES = ROOT / "trainguard" / "rules"
INDEX_PAGE = ROOT / "docs" / "rules.md"
SECTIONS = ("What it detects", "Why it hurts", "Example", "Fix")
DETECTED_BY = {"both": "runtime and lint", "run": "runtime", "lint": "lint"}
ALL_CODES = frozenset(rule.code for rule in RULES)
# rich pads code blocks by one column: longer lines wrap in an 80-column terminal.
MAX_CODE_LINE = 78


def codes_starting(prefix: str) -> set[str]:
    return {code for code in ALL_CODES if code.startswith(prefix)}


# -- reading a rule page ----------------------------------------------------------------------


@dataclass
class RulePage:
    """A rule page split at its `##` headings (headings inside code fences do not count)."""

    lines: list[str]
    intro: list[str]  # lines between the title and the first section
    sections: list[tuple[str, str]]  # (heading text, body) in order
    unclosed_fence: bool

    def section(self, heading: str) -> str:
        return dict(self.sections)[heading]


def read_page(text: str) -> RulePage:
    lines = text.splitlines()
    intro: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    fenced = False
    for line in lines[1:]:
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            sections.append((line, []))
        elif sections:
            sections[-1][1].append(line)
        else:
            intro.append(line)
    return RulePage(lines, intro, [(heading, "\n".join(body)) for heading, body in sections], fenced)


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, re.S | re.M)


def example_and_fix(rule: Rule) -> tuple[str, str]:
    """The code of the page's Example and Fix; the Fix continues the Example's file, so it gets
    the Example's import statements."""
    page = read_page(rule.docs())
    example = "\n".join(python_blocks(page.section("## Example")))
    fix = "\n".join(python_blocks(page.section("## Fix")))
    imports = [ast.get_source_segment(example, node) or "" for node in ast.parse(example).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return example, "\n".join([*imports, fix])


def plain_text(markdown: str) -> str:
    """What rich shows of a paragraph or list item: no markup, whitespace collapsed."""
    text = re.sub(r"^- ", "", markdown.strip())
    return " ".join(text.replace("**", "").replace("`", "").split())


# -- the catalogue ----------------------------------------------------------------------------


def test_codes_are_unique_well_formed_and_in_order() -> None:
    codes = [rule.code for rule in RULES]
    assert len(RULES) == 41
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"TG[1-9]\d\d", code) for code in codes), codes
    assert codes == sorted(codes)


def test_slugs_are_unique_kebab_case() -> None:
    slugs = [rule.slug for rule in RULES]
    assert len(set(slugs)) == len(slugs)
    for slug in slugs:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", slug), slug


def test_every_rule_has_a_severity_a_face_and_a_summary() -> None:
    for rule in RULES:
        assert isinstance(rule.severity, Severity)
        assert rule.where in DETECTED_BY
        assert (rule.runs, rule.lints) == {"both": (True, True), "run": (True, False), "lint": (False, True)}[rule.where]
        assert rule.summary.strip() and "\n" not in rule.summary


def test_get_rule_by_code_in_any_case_and_by_slug() -> None:
    for rule in RULES:
        assert get_rule(rule.code) is rule
        assert get_rule(rule.code.lower()) is rule
        assert get_rule(f" {rule.code.capitalize()} ") is rule
        assert get_rule(rule.slug) is rule


@pytest.mark.parametrize("name", ["nope", "TG999", "TG1", "stale_gradients", ""])
def test_get_rule_rejects_names_that_are_not_one_rule(name: str) -> None:
    with pytest.raises(UnknownRuleError, match="trainguard rules") as caught:
        get_rule(name)
    assert isinstance(caught.value, ValueError)


def test_match_rules_expands_code_prefixes_in_any_case() -> None:
    tg1 = codes_starting("TG1")
    assert len(tg1) == 15 and all(code.startswith("TG1") for code in tg1)
    assert match_rules(["TG1"]) == tg1
    assert match_rules(["tg1"]) == tg1
    assert match_rules(["TG10"]) == {f"TG10{digit}" for digit in range(1, 10)}
    assert match_rules(["TG"]) == ALL_CODES


def test_match_rules_mixes_codes_slugs_and_prefixes() -> None:
    assert match_rules(["TG101", "softmax-before-cross-entropy", "TG8", " unsafe-torch-load "]) == {
        "TG101", "TG302", "TG701", "TG801", "TG802", "TG803", "TG804",
    }
    assert match_rules(["", "  "]) == set()
    assert match_rules([]) == set()


@pytest.mark.parametrize("name", ["nope", "TG9", "TG1000", "stale_gradients"])
def test_match_rules_rejects_unknown_names(name: str) -> None:
    with pytest.raises(UnknownRuleError):
        match_rules(["TG101", name])


def test_split_names_accepts_comma_separated_text_and_lists() -> None:
    assert split_names(None) == []
    assert [name.strip() for name in split_names("TG1, softmax-before-cross-entropy,,")] == ["TG1", "softmax-before-cross-entropy"]
    assert [name.strip() for name in split_names(["TG1,TG2", "graph-retained"])] == ["TG1", "TG2", "graph-retained"]


def test_rule_selection_defaults_to_every_rule() -> None:
    assert RuleSelection.build().codes == ALL_CODES
    assert RuleSelection.build(select=None, ignore=None).codes == ALL_CODES
    assert RuleSelection.build(select="").codes == ALL_CODES  # an empty --select selects nothing away


def test_rule_selection_select_then_ignore() -> None:
    assert RuleSelection.build(select="TG1").codes == codes_starting("TG1")
    assert RuleSelection.build(ignore="TG1").codes == ALL_CODES - codes_starting("TG1")
    mixed = RuleSelection.build(select="TG1,TG2", ignore="stale-gradients,TG2")
    assert mixed.codes == codes_starting("TG1") - {"TG101"}
    assert RuleSelection.build(select=["TG101", "graph-retained"]).codes == {"TG101", "TG204"}
    assert RuleSelection.build(select="TG1", ignore="TG1").codes == frozenset()


def test_rule_selection_membership() -> None:
    selection = RuleSelection.build(select="TG3", ignore="TG305")
    assert "TG302" in selection
    assert "TG305" not in selection
    assert "TG101" not in selection
    assert "softmax-before-cross-entropy" not in selection  # membership is by code


@pytest.mark.parametrize(("select", "ignore"), [("nope", None), (None, "TG9"), ("TG1", "stale_gradients")])
def test_rule_selection_rejects_unknown_names(select: str | None, ignore: str | None) -> None:
    with pytest.raises(UnknownRuleError):
        RuleSelection.build(select=select, ignore=ignore)


# -- the rule pages ---------------------------------------------------------------------------


def test_one_page_per_rule_and_no_other() -> None:
    assert {path.stem for path in RULE_PAGES.glob("*.md")} == ALL_CODES


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_page_title_and_severity_line(rule: Rule) -> None:
    page = read_page(rule.docs())
    assert page.lines[0] == f"# {rule.code} {rule.slug}"
    intro = [line for line in page.intro if line.strip()]
    assert intro == [f"**Severity:** {rule.severity.value} · **Detected by:** {DETECTED_BY[rule.where]}"]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_page_has_the_four_sections_in_order(rule: Rule) -> None:
    page = read_page(rule.docs())
    assert not page.unclosed_fence
    assert [heading for heading, _ in page.sections] == [f"## {name}" for name in SECTIONS]
    for heading in ("## What it detects", "## Why it hurts"):
        assert len(page.section(heading).split()) >= 20, f"{rule.code}: {heading} is nearly empty"
    assert 25 <= len(page.lines) <= 60, f"{rule.code} has {len(page.lines)} lines"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_example_and_fix_are_valid_python_that_fits_a_terminal(rule: Rule) -> None:
    page = read_page(rule.docs())
    for heading in ("## Example", "## Fix"):
        blocks = python_blocks(page.section(heading))
        assert blocks, f"{rule.code}: no python code block in {heading}"
        for block in blocks:
            ast.parse(block, filename=f"{rule.code} {heading}")
            too_long = [line for line in block.splitlines() if len(line) > MAX_CODE_LINE]
            assert not too_long, f"{rule.code}: code lines over {MAX_CODE_LINE} characters: {too_long}"
    assert python_blocks(page.section("## Example")) != python_blocks(page.section("## Fix"))


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_detects_section_describes_each_face_that_detects_the_rule(rule: Rule) -> None:
    detects = " ".join(read_page(rule.docs()).section("## What it detects").split())
    if rule.where == "both":
        assert "- **runtime**:" in detects and "- **lint**:" in detects
    elif rule.where == "run":
        assert "runtime guard" in detects and "lint" not in detects
    else:
        assert "`trainguard lint`" in detects and "runtime" not in detects


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_fix_ends_with_how_to_silence_the_rule(rule: Rule) -> None:
    last = read_page(rule.docs()).section("## Fix").strip().splitlines()[-1]
    assert f"`--ignore {rule.code}`" in last
    # Only `trainguard lint` reads suppression comments: a runtime-only rule must not offer one.
    assert (f"`# trainguard: ignore[{rule.slug}]`" in last) == rule.lints


@pytest.mark.parametrize("rule", [rule for rule in RULES if rule.lints], ids=lambda rule: rule.code)
def test_lint_flags_the_example_and_nothing_in_the_fix(rule: Rule) -> None:
    from trainguard.lint.engine import lint_source

    example, fix = example_and_fix(rule)
    assert {finding.code for finding in lint_source(example, "example.py").findings} == {rule.code}
    assert [(finding.code, finding.line) for finding in lint_source(fix, "fix.py").findings] == []


def test_docs_index_lists_every_rule_with_a_link_to_its_page() -> None:
    rows = [line for line in INDEX_PAGE.read_text("utf-8").splitlines() if line.startswith("| [TG")]
    expected = [
        f"| [{rule.code}](../trainguard/rules/{rule.code}.md) | `{rule.slug}` | {rule.severity.value} | {DETECTED_BY[rule.where]} | {rule.summary} |"
        for rule in RULES
    ]
    assert rows == expected
    for rule in RULES:
        assert (INDEX_PAGE.parent / f"../trainguard/rules/{rule.code}.md").resolve().is_file()


# -- `trainguard rules` -----------------------------------------------------------------------


def test_rules_command_shows_every_paragraph_and_list_item_in_full(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from trainguard.rules_command import run_rules

    monkeypatch.setenv("COLUMNS", "80")
    cropped = []
    for rule in RULES:
        assert run_rules(argparse.Namespace(rule=rule.code, format="text")) == 0
        shown = " ".join(capsys.readouterr().out.split())
        page = read_page(rule.docs())
        for heading in ("## What it detects", "## Why it hurts"):
            for block in re.split(r"\n\s*\n|\n(?=- )", page.section(heading)):
                if block.strip() and plain_text(block) not in shown:
                    cropped.append(f"{rule.code}: {plain_text(block)[:60]}...")
    assert cropped == []


def run_trainguard(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "trainguard", *args], capture_output=True, text=True, timeout=120, env=env, check=False)


def test_cli_lists_every_rule_in_full_when_piped() -> None:
    # COLUMNS=100 is narrower than the longest row: a table sized to it would crop slugs and summaries.
    result = run_trainguard("rules")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for rule in RULES:
        assert lines[rule.code].split()[1:4] == [rule.slug, rule.severity.value, rule.where], rule.code
        assert lines[rule.code].endswith("  " + rule.summary), rule.code
    assert max(map(len, result.stdout.splitlines())) > 100
    assert result.stderr == ""


def test_cli_unknown_rule_is_one_line_on_stderr_and_exit_2() -> None:
    result = run_trainguard("rules", "nope")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert "'nope'" in result.stderr and "trainguard rules" in result.stderr


def test_cli_json_lists_the_catalogue() -> None:
    result = run_trainguard("rules", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"code": rule.code, "slug": rule.slug, "severity": rule.severity.value, "where": rule.where, "summary": rule.summary, "fix": rule.fix}
        for rule in RULES
    ]


def test_cli_explains_a_rule_by_slug_or_code(capsys: pytest.CaptureFixture[str]) -> None:
    from trainguard.cli import main

    outputs = []
    for name in ("stale-gradients", "TG101", "tg101"):
        assert main(["rules", name]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]
    shown = outputs[0]
    assert "TG101 stale-gradients" in shown
    for heading in SECTIONS:
        assert heading in shown
    assert "optimizer.zero_grad()  # first line of every step" in shown
    assert "**" not in shown and "```" not in shown  # rendered, not raw Markdown


def test_cli_json_for_one_rule_carries_its_page(capsys: pytest.CaptureFixture[str]) -> None:
    from trainguard.cli import main

    assert main(["rules", "graph-retained", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    rule = get_rule("TG204")
    assert shown == {"code": "TG204", "slug": "graph-retained", "severity": "error", "where": "both", "summary": rule.summary, "fix": rule.fix, "docs": rule.docs()}
