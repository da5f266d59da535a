"""`crosswalk monitor`: writes the JSON report, prints a summary, exits 1 with one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from service.cli import app


def _write(tmp_path, reference, current):
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.csv"
    reference.to_csv(ref, index=False)
    current.to_csv(cur, index=False)
    return ref, cur


def test_monitor_writes_report_and_summary(tmp_path, reference, current):
    rows = current.site == "north"
    current.loc[rows, "value_as_number"] = None
    ref, cur = _write(tmp_path, reference, current)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["monitor", "--reference", str(ref), "--current", str(cur), "--output", str(out), "--segment", "site"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    [alert] = report["alerts"]
    assert (alert["check"], alert["column"], alert["segment"]) == ("completeness", "value_as_number", "north")
    assert "1 critical" in result.output and "site north: value_as_number entirely missing" in result.output


def test_monitor_html(tmp_path, reference, current):
    ref, cur = _write(tmp_path, reference, current)
    html = tmp_path / "r.html"
    result = CliRunner().invoke(
        app, ["monitor", "-r", str(ref), "-c", str(cur), "-o", str(tmp_path / "r.json"), "--html", str(html)]
    )
    assert result.exit_code == 0, result.output
    assert html.stat().st_size > 10_000 and "0 critical, 0 warning" in result.output


def test_bad_input_exits_1_with_one_line(tmp_path, reference):
    ref, _ = _write(tmp_path, reference, reference)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("x,y\n1,2\n")
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from service.cli import main; main()",
            "monitor",
            "-r",
            str(ref),
            "-c",
            str(wrong),
            "-o",
            str(tmp_path / "o.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 2
    assert child.stderr.strip().count("\n") == 0
    assert "wrong.csv: wrong columns for feed 'default'" in child.stderr and "Traceback" not in child.stderr
    assert not (tmp_path / "o.json").exists()


def test_missing_file_and_unknown_segment(tmp_path, reference):
    ref, _ = _write(tmp_path, reference, reference)
    runner = CliRunner()
    missing = runner.invoke(app, ["monitor", "-r", str(ref), "-c", str(tmp_path / "nope.csv"), "-o", "x.json"])
    assert missing.exit_code == 2 and "nope.csv: no such file" in missing.output
    segment = runner.invoke(
        app, ["monitor", "-r", str(ref), "-c", str(ref), "-o", str(tmp_path / "x.json"), "--segment", "ward"]
    )
    assert segment.exit_code == 2 and "--segment ward: no such column" in segment.output
