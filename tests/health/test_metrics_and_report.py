"""The metrics stream, `run --report/--metrics/--html`, `trainguard report`, and the HTML page as
a browser renders it (headless Chromium, when installed: `.ci/run` installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from html import unescape
from pathlib import Path

import pytest

from tests.health.test_numeric_rules import digits_run

SCRIPT = textwrap.dedent("""\
    import sys
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader
    from trainguard.demo.digits import make_digits

    torch.manual_seed(0)
    train = DataLoader(make_digits(512, seed=1), batch_size=64, shuffle=True)
    val = DataLoader(make_digits(128, seed=2), batch_size=64)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=float(sys.argv[1]), momentum=0.9)
    for epoch in range(3):
        model.train()
        for x, y in train:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in val:
                F.cross_entropy(model(x), y)
""")


def test_metrics_stream_records_steps_and_evaluations(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    digits_run(lr=0.1, epochs=2, watch={"metrics": str(metrics)})
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    steps = [r for r in records if r["type"] == "step"]
    evals = [r for r in records if r["type"] == "eval"]
    assert [r["step"] for r in steps[:20]] == list(range(20))  # every step of the first 20
    first = steps[0]
    assert first["loss"] > 2.0 and first["grad_norm"] > 0 and first["lr"] == 0.1
    assert 0 < first["update_ratio"] < 1
    assert set(first["layer_grad_norms"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert [e["evaluation"] for e in evals] == [1, 2] and evals[1]["val_loss"] < evals[0]["val_loss"]
    assert evals[0]["samples"] == 256 and evals[0]["step"] == 10


def test_tensorboard_scalars(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    digits_run(lr=0.1, epochs=1, watch={"tensorboard": str(tmp_path)})
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert {"train/loss", "train/grad_norm", "train/lr", "val/loss"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("train/loss")) >= 10


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainguard", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def diverging_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    (folder / "train.py").write_text(SCRIPT)
    result = run_cli("run", "--report", "out/run.json", "--html", "out/run.html", "--", sys.executable, "train.py", "1000", cwd=folder)
    assert result.returncode == 1, result.stderr
    return folder / "out"


def test_run_writes_report_metrics_and_html(diverging_run: Path) -> None:
    report = json.loads((diverging_run / "run.json").read_text())
    assert report["metrics"] == "run.metrics.jsonl"
    assert {"TG306", "TG108"} <= {f["code"] for f in report["findings"]}
    records = [json.loads(line) for line in (diverging_run / "run.metrics.jsonl").read_text().splitlines()]
    assert any(r["type"] == "step" and r["loss"] == "nan" for r in records)
    page = (diverging_run / "run.html").read_text()
    assert page.count("<figure class=\"chart\"") == 4 and "TG306 non-finite-loss" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)  # nothing from the network


def test_report_command_rebuilds_the_same_page(diverging_run: Path) -> None:
    result = run_cli("report", "run.json", "--html", "again.html", cwd=diverging_run)
    assert result.returncode == 0, result.stderr
    assert (diverging_run / "again.html").read_text() == (diverging_run / "run.html").read_text()


@pytest.mark.parametrize("content", [None, "not json", '{"tool": "other"}'])
def test_report_command_rejects_what_is_not_a_report(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "r.json").write_text(content)
    result = run_cli("report", "r.json", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("trainguard report: ")


# Run in the page after its own script, as a user would act: hover the loss chart, drag a box,
# double-click; and read what the browser laid out (swatch colours, marker label boxes, ticks).
BROWSER_CHECK = """
<script>
window.addEventListener("load", function () {
  var result = {ready: document.documentElement.getAttribute("data-charts-ready"), errors: window.pageErrors, charts: []};
  var texts = function (node, selector) { return Array.prototype.map.call(node.querySelectorAll(selector), function (t) { return t.textContent; }); };
  Array.prototype.forEach.call(document.querySelectorAll("figure.chart"), function (figure) {
    var svg = figure.querySelector("svg");
    result.charts.push({
      title: svg.querySelector(".title").textContent, error: figure.getAttribute("data-chart-error"),
      swatches: Array.prototype.map.call(svg.querySelectorAll("rect.swatch"), function (r) { return getComputedStyle(r).fill; }),
      labels: Array.prototype.map.call(svg.querySelectorAll("g.marker-labels text"), function (t) {
        var b = t.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; }),
      yTicks: texts(svg, "g.y-ticks text")});
    svg.dispatchEvent(new MouseEvent("dblclick", {bubbles: true}));  // the script redraws the full view with its own rules
    result.charts[result.charts.length - 1].redrawn = [texts(svg, "g.y-ticks text"), texts(svg, "g.x-ticks text").length];
  });
  var figure = document.querySelector("figure.chart"), svg = figure.querySelector("svg"), box = svg.getBoundingClientRect();
  var at = function (x, y) { return {clientX: box.left + x * box.width / 640, clientY: box.top + y * box.width / 640, bubbles: true, button: 0}; };
  svg.dispatchEvent(new MouseEvent("mousemove", at(64 + 576 * 0.25, 100)));
  var tip = figure.querySelector(".chart-tip");
  result.tip = tip && !tip.hidden ? tip.textContent : null;
  result.ticks = [texts(svg, "g.x-ticks text")];
  svg.dispatchEvent(new MouseEvent("mousedown", at(64 + 576 * 0.1, 150)));
  svg.dispatchEvent(new MouseEvent("mousemove", at(64 + 576 * 0.6, 150)));
  window.dispatchEvent(new MouseEvent("mouseup", at(64 + 576 * 0.6, 150)));
  result.ticks.push(texts(svg, "g.x-ticks text"));
  svg.dispatchEvent(new MouseEvent("dblclick", at(64 + 576 * 0.5, 150)));
  result.ticks.push(texts(svg, "g.x-ticks text"));
  var out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""
CATCH_ERRORS = '<script>window.pageErrors = []; window.addEventListener("error", function (e) { window.pageErrors.push(e.message); });</script>'


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize(("content", "message"), [
    ("", "r.json is empty"),
    ("[1, 2]", "not a trainguard JSON report"),
    ('{"tool": "trainguard", "findings": 5}', '"findings" must be a list'),
    ('{"tool": "trainguard", "findings": [{"code": "TG101"}]}', "findings[0].rule must be a string"),
    ('{"tool": "trainguard", "findings": [{"rule": "r", "code": "c", "message": "m", "severity": "fatal"}]}',
     "findings[0].severity must be one of error, warning, info"),
    ('{"tool": "trainguard", "findings": [{"rule": "r", "code": "c", "message": "m", "severity": "info", "step": "one"}]}',
     "findings[0].step must be a number or null"),
    ('{"tool": "trainguard", "findings": [], "summary": []}', '"summary" must be an object'),
    ('{"tool": "trainguard", "findings": [], "metrics": 7}', '"metrics" must be a string'),
])
def test_report_command_names_what_is_wrong_with_a_malformed_report(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                     content: str, message: str) -> None:
    from trainguard.cli import main

    (tmp_path / "r.json").write_text(content)
    assert main(["report", str(tmp_path / "r.json")]) == 2
    error = capsys.readouterr().err
    assert message in error and error.startswith("trainguard report: ") and error.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_report_command_skips_malformed_metrics_records_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainguard.cli import main

    (tmp_path / "r.json").write_text('{"tool": "trainguard", "findings": [], "metrics": "m.jsonl"}')
    (tmp_path / "m.jsonl").write_text('5\n{"type": "step"}\n{"type": "step", "step": 0, "loss": "oops"}\n'
                                      '{"type": "step", "step": 1, "loss": 2.0}\n{"type": "st')
    assert main(["report", str(tmp_path / "r.json")]) == 0
    assert f"skipped 2 malformed record(s) of {tmp_path / 'm.jsonl'}" in capsys.readouterr().err
    assert "<svg" in (tmp_path / "r.html").read_text()  # the one good record is drawn
    (tmp_path / "m.jsonl").unlink()
    assert main(["report", str(tmp_path / "r.json")]) == 0
    assert "m.jsonl named by the report does not exist; the page has no curves" in capsys.readouterr().err


def test_html_renders_in_headless_chromium(diverging_run: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600"]
    page = (diverging_run / "run.html").read_text()
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("<head>", "<head>" + CATCH_ERRORS, 1).replace("</body>", BROWSER_CHECK + "</body>"))
    dom = subprocess.run([chromium, *flags, "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "TG306 non-finite-loss" in dom and "TG108 exploding-gradients" in dom
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    result = json.loads(unescape(found.group(1)))
    assert result["errors"] == [] and result["ready"] == "4"  # the script ran on every chart, without errors
    charts = {chart["title"]: chart for chart in result["charts"]}
    assert all(chart["error"] is None for chart in charts.values())
    assert [chart["redrawn"][0] for chart in charts.values()] == [chart["yTicks"] for chart in charts.values()]  # the script draws ticks as Python does
    assert all(chart["redrawn"][1] > 2 for chart in charts.values())
    # train and validation are told apart: their legend swatches are drawn in their own colours
    assert charts["loss"]["swatches"] == ["rgb(211, 84, 0)", "rgb(36, 113, 163)"]
    # a constant learning rate (1000) sits mid-axis, with ticks that differ
    lr_ticks = charts["learning rate"]["yTicks"]
    assert "1000" in lr_ticks and len(set(lr_ticks)) == len(lr_ticks) > 2 and not any(t.startswith("-") for t in lr_ticks)
    for chart in charts.values():  # marker labels inside the chart and apart from each other
        labels = chart["labels"]
        assert labels and all(0 <= box[0] and box[2] <= 640 for box in labels), chart
        assert not any(_overlap(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]), chart
    assert result["tip"] and result["tip"].startswith("optimizer step ") and "train: " in result["tip"]
    before, zoomed, reset = result["ticks"]
    assert zoomed != before and reset == before  # dragging a box zoomed in, a double click reset
    shot = tmp_path / "page.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", (diverging_run / "run.html").resolve().as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
