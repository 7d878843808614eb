"""benchmarks/real_code.py: the counts it prints are the lint's findings, and its usage errors are one sentence."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "real_code.py"

STALE_GRADIENTS = """\
import torch

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(10):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
"""


def run_benchmark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


def test_counts_findings_by_rule_per_folder(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(STALE_GRADIENTS)
    (tmp_path / "clean.py").write_text("import torch\n")
    completed = run_benchmark(str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    assert f"{tmp_path.name}: 2 files linted" in completed.stdout
    assert "    TG101 stale-gradients [error]: 1" in completed.stdout
    assert f"{tmp_path / 'train.py'}:8 TG101 stale-gradients" in completed.stdout


def test_missing_folder_is_a_usage_error_without_traceback(tmp_path: Path) -> None:
    completed = run_benchmark(str(tmp_path / "absent"))
    assert completed.returncode == 2
    assert completed.stderr.strip() == f"real_code.py: not found: {tmp_path / 'absent'}"


def test_scripts_file_lines_give_folder_environment_and_this_interpreter(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("real_code", SCRIPT)
    assert spec is not None and spec.loader is not None
    real_code = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = real_code  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(real_code)
    finally:
        del sys.modules[spec.name]
    listing = tmp_path / "scripts.txt"
    listing.write_text("# comment\n\nmnist | /tmp/m | PYTHONPATH=/shims SEED=1 python main.py --epochs '2'\n")
    [script] = real_code.read_scripts(listing)
    assert (script.label, script.directory) == ("mnist", Path("/tmp/m"))
    assert script.environment == {"PYTHONPATH": "/shims", "SEED": "1"}
    assert script.command == [sys.executable, "main.py", "--epochs", "2"]
