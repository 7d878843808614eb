"""The integrations are optional: trainguard imports without the frameworks, and an integration
whose framework is missing says which package to install."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def test_importing_trainguard_imports_no_framework() -> None:
    code = (
        "import sys, trainguard, trainguard.integrations; "
        "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'transformers', 'accelerate') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("integration", "framework", "package"),
    [("lightning", "lightning.pytorch", "lightning"), ("transformers", "transformers", "transformers")],
)
def test_missing_framework_names_the_package(
    integration: str, framework: str, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, framework, None)  # `import framework` now fails as if absent
    monkeypatch.delitem(sys.modules, f"trainguard.integrations.{integration}", raising=False)
    with pytest.raises(ImportError, match=rf"needs the '{package}' package, which is not installed: pip install {package}$"):
        importlib.import_module(f"trainguard.integrations.{integration}")
