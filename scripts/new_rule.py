"""Add a rule: its catalogue entry, its page, its detector and/or lint rule, and fixture skeletons.

    python scripts/new_rule.py TG117 some-slug --where run --severity warning \\
        --summary "what it detects, in a few words" \\
        --fix "the one sentence both faces print" \\
        --seen-when "the moment of a run the guard first observes it"

Writes the entry into trainguard/catalogue.py (in code order), trainguard/rules/<CODE>.md, a
module in trainguard/runtime/detectors/ (`--where run|both`) and/or trainguard/lint/rules/
(`--where lint|both`), one fire and one silent fixture per face, and regenerates the rule tables
of docs/rules.md and the README. The skeletons fail the tests until they are filled in: the
handlers raise NotImplementedError, the fire fixtures expect a finding nobody reports yet and
the page has no content. See DEVELOPERS.md, "Adding a rule".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEVERITY_NAMES = {"error": "E", "warning": "W", "info": "I"}
DETECTED_BY = {"run": "runtime", "lint": "lint", "both": "runtime and lint"}

SPEC = '''    Rule(
        "{code}", "{slug}", {severity}, "{where}",
        summary={summary},
        fix={fix},{seen_when}
    ),
'''

PAGE = """# {code} {slug}

**Severity:** {severity} · **Detected by:** {detected_by}

## What it detects

TODO: what the {faces} sees, where it reports it, and the tricky correct code that stays silent.

## Why it hurts

TODO: what goes wrong in training, and why nothing crashes.

## Example

```python
# TODO: a real PyTorch example of the bug
```

## Fix

```python
# TODO: the same example, fixed
```

Silence it on purpose: {silence}`--ignore {code}`.
"""

DETECTOR = '''"""{code} {slug}: {summary}."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class {class_name}(Detector):
    """{code}: TODO say at which event it decides, and from what."""

    code = "{code}"

    def on_step_start(self, event: StepStart) -> None:
        # Subscribe to the events the rule needs (trainguard.runtime.events.EVENTS) and call
        # self.report(message, location, evidence=...); the fix text comes from the catalogue.
        raise NotImplementedError("{code} detector")
'''

LINT_RULE = '''"""{code} {slug}: {summary}."""

from __future__ import annotations

from trainguard.lint import events as ev
from trainguard.lint.rules import LintRule
from trainguard.lint.trace_view import TraceView


class {class_name}(LintRule):
    """{code}: TODO say at which event it decides, and from what."""

    codes = ("{code}",)
    # TODO the words a function must use for this rule to report in its trace (LintRule.triggers);
    # None (the default) analyses every function on its own: correct, but slow on large files.
    triggers = None

    def on_call(self, event: ev.Call, ctx: TraceView) -> None:
        # Subscribe to the interpreter's events (trainguard.lint.events) and call
        # self.report("{code}", node, message, evidence=...); the fix text comes from the catalogue.
        raise NotImplementedError("{code} lint rule")
'''

LOOP = '''import torch
from torch import nn

torch.manual_seed(0)
model = nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(torch.randn(8, 4)), torch.randint(0, 2, (8,)))
    loss.backward()
    optimizer.step(){expect}
'''

FIRE_DOC = '"""TODO: the {code} {slug} bug this script plants (the `# expect:` comment goes on the line to report)."""\n\n'
SILENT_DOC = '"""TODO: tricky correct code that {code} {slug} must not report."""\n\n'


def quoted(text: str) -> str:
    """A double-quoted Python string literal, as the catalogue writes them (JSON's is one)."""
    return json.dumps(text, ensure_ascii=False)


def class_name(slug: str) -> str:
    return "".join(part.capitalize() for part in slug.split("-"))


def add_spec(catalogue: str, code: str, entry: str) -> str:
    """`catalogue`'s source with `entry` inserted before the first rule with a larger code."""
    for match in re.finditer(r'^    Rule\(\n        "(TG\d{3})"', catalogue, re.M):
        if match.group(1) > code:
            return catalogue[: match.start()] + entry + catalogue[match.start():]
    end = catalogue.index("\n)\ndel E, W, I")
    return catalogue[: end + 1] + entry + catalogue[end + 1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("code", help="the next free code of its group, e.g. TG117")
    parser.add_argument("slug", help="kebab-case, e.g. clip-after-step")
    parser.add_argument("--where", choices=("run", "lint", "both"), required=True)
    parser.add_argument("--severity", choices=tuple(SEVERITY_NAMES), default="warning")
    parser.add_argument("--summary", required=True, help="what it detects, as in `trainguard rules`")
    parser.add_argument("--fix", required=True, help="the one fix sentence both faces print")
    parser.add_argument("--seen-when", default="", help="runtime rules: when a run first shows it")
    args = parser.parse_args(argv)

    catalogue_path = ROOT / "trainguard" / "catalogue.py"
    catalogue = catalogue_path.read_text("utf-8")
    if not re.fullmatch(r"TG\d{3}", args.code) or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", args.slug):
        parser.error("the code looks like TG117 and the slug like clip-after-step")
    if f'"{args.code}"' in catalogue or f'"{args.slug}"' in catalogue:
        parser.error(f"{args.code} or {args.slug} is already in the catalogue")
    runs = args.where in ("run", "both")
    if runs != bool(args.seen_when):
        parser.error("--seen-when is required for a runtime rule, and only for one")

    seen_when = f"\n        seen_when={quoted(args.seen_when)}," if args.seen_when else ""
    entry = SPEC.format(code=args.code, slug=args.slug, severity=SEVERITY_NAMES[args.severity], where=args.where,
                        summary=quoted(args.summary), fix=quoted(args.fix), seen_when=seen_when)
    values = {"code": args.code, "slug": args.slug, "summary": args.summary, "class_name": class_name(args.slug)}
    module = args.slug.replace("-", "_")
    files: dict[Path, str] = {
        ROOT / "trainguard" / "rules" / f"{args.code}.md": PAGE.format(
            **values, severity=args.severity, detected_by=DETECTED_BY[args.where],
            faces={"run": "runtime guard", "lint": "`trainguard lint`", "both": "runtime guard and `trainguard lint`"}[args.where],
            silence=f"`# trainguard: ignore[{args.slug}]` on the reported line or " if args.where != "run" else "",
        ),
    }
    if runs:
        fixtures = ROOT / "tests" / "runtime" / "fixtures"
        files[ROOT / "trainguard" / "runtime" / "detectors" / f"{module}.py"] = DETECTOR.format(**values)
        files[fixtures / f"fire_{module}.py"] = FIRE_DOC.format(**values) + LOOP.format(expect=f"  # expect: {args.code} step=0")
        files[fixtures / f"silent_{module}.py"] = SILENT_DOC.format(**values) + LOOP.format(expect="")
    if args.where in ("lint", "both"):
        fixtures = ROOT / "tests" / "lint" / "fixtures"
        files[ROOT / "trainguard" / "lint" / "rules" / f"{module}.py"] = LINT_RULE.format(**values)
        files[fixtures / "fire" / f"{args.code.lower()}_{module}.py"] = FIRE_DOC.format(**values) + LOOP.format(expect=f"  # expect: {args.code}")
        files[fixtures / "silent" / f"{module}.py"] = SILENT_DOC.format(**values) + LOOP.format(expect="")
    existing = [path for path in files if path.exists()]
    if existing:
        parser.error(f"{existing[0].relative_to(ROOT)} exists already")

    catalogue_path.write_text(add_spec(catalogue, args.code, entry), "utf-8")
    for path, text in files.items():
        path.write_text(text, "utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    print(f"added {args.code} {args.slug} to trainguard/catalogue.py")
    # A fresh interpreter: this one imported the catalogue before the new entry was written.
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "trainguard.rule_tables", "--write"], cwd=ROOT, env=environment).returncode


if __name__ == "__main__":
    sys.exit(main())
