"""The README's walk-through, run as written: every `crosswalk` command of its Use, Review service, Field
mapping, Monitoring and HL7 sections is either run here, in README order, in a fresh CROSSWALK_HOME on the
shipped samples, or skipped with the reason: a new command runs, and one that cannot (your files, a
server) must be listed; a listed command that left the README fails. Where the README shows output that
does not depend on time or on a skipped command (SHOWN), the command must print it.

Commands run in this process (the real entry point, `service.cli.main`) with the hashing stand-in for
MiniLM: what is checked is that each command works as written, not how well it ranks.
"""

from __future__ import annotations

import glob
import re
import shlex

import pytest

import service.engine
from service import crud, decisions
from service.cli.common import served_terminologies, transaction
from service.store.tables import DecisionCreate, Status
from tests.conftest import REPO
from tests.service.conftest import crosswalk

SECTIONS = ("Use", "Review service", "Field mapping", "Monitoring", "HL7 v2 and FHIR messages")
SKIPPED = {
    "crosswalk serve": "runs until stopped; tests/service/test_first_hour.py starts and stops it",
    "crosswalk feed create st-mary-labs --reference labs-2026-02.csv --segment site [--project 1] [--fields-project 2]": (
        "your files"
    ),
    "crosswalk feed webhook st-mary-labs --url https://ops.example/hook": "an example receiver",
    "crosswalk feed post st-mary-labs labs-2026-03-01.csv labs-2026-03-02.parquet": "your files",
    "crosswalk alerts list [--feed st-mary-labs] [--status active] [--severity critical] [--segment B]": "options",
    "crosswalk alerts ack 3f2a9c0d1e4b5a69": "an example alert id",
    "crosswalk alerts resolve 3f2a9c0d1e4b5a69": "an example alert id",
    "crosswalk project import -p lab-codes --format fhir bundle.json": "your file",
    "crosswalk project items -p lab-codes [--status new] [--format table|csv|json]": "options",
    "crosswalk feed create samples --reference samples.hl7 --segment site --project lab-codes": "your file",
    "crosswalk listen --feed samples --port 2575 --batch-size 50 --batch-seconds 5 [--project lab-codes]": "a server",
    "crosswalk alerts list --feed samples": "needs the MLLP feed above (tests/service/test_hl7_listener.py)",
    "crosswalk feed batch-messages samples 3": "needs the MLLP feed above",
    "crosswalk feed dead-letters samples": "needs the MLLP feed above",
    "crosswalk lineage --alert 5ddce657b00d040f": "an alert of the MLLP feed above (tests/service/test_hl7_lineage.py)",
}
# The README's output that does not depend on time or on the skipped commands, checked line by line.
SHOWN = {
    "crosswalk project import -p lab-codes --format hl7v2 data/samples/hl7v2/*.hl7": [
        "read 11 messages (11 new to the store, 0 dead letters); 8 local codes: 8 new, 0 updated, 0 unchanged"
    ],
}
# Before these commands the walk-through reviews, as a reviewer would in the UI: approvals to release.
REVIEWED_BEFORE = {'crosswalk release create -p "St Mary LIS"', 'crosswalk release create -p "Clinic ETL"'}


def readme_commands() -> list[tuple[str, list[str]]]:
    """(command, the `# ` lines the README shows under it) for every `crosswalk` command of SECTIONS."""
    found: list[tuple[str, list[str]]] = []
    for section in re.split(r"^## ", (REPO / "README.md").read_text(), flags=re.M):
        if section.splitlines()[0].strip() not in SECTIONS:
            continue
        for block in re.findall(r"```bash\n(.*?)```", section, re.S):
            shown: list[str] | None = None  # the output lines of the block's latest command
            for line in block.splitlines():
                if line.startswith("# ") and shown is not None:
                    shown.append(line[2:])
                for command in line.split(" ; "):
                    command = re.split(r"\s+#", command)[0].strip()
                    if command.startswith("crosswalk "):
                        shown = []
                        found.append((command, shown))
    return found


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    commands = dict(readme_commands())
    assert len(commands) > 25
    assert set(SKIPPED) <= set(commands), "a skipped command is no longer in the README"
    assert REVIEWED_BEFORE <= set(commands)
    for command, lines in SHOWN.items():
        assert commands[command] == lines, f"the README shows other output under {command}"


@pytest.mark.slow
def test_the_readme_walk_through_runs_as_written(tmp_path, monkeypatch, capsys, encoder):
    """Minutes: the first suggestion against ICD-10-CM builds its index (with the stand-in encoder)."""
    monkeypatch.setenv("CROSSWALK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(service.engine, "bundled_encoder", lambda settings: encoder)
    service.engine.served_suggesters.cache_clear()
    work = tmp_path / "work"  # the README's relative paths (data/samples/...), its outputs written here
    work.mkdir()
    for folder in ("data", "tests"):
        (work / folder).symlink_to(REPO / folder)
    monkeypatch.chdir(work)
    try:
        for command, _ in readme_commands():
            if command in SKIPPED:
                continue
            if command in REVIEWED_BEFORE:
                _approve_top_suggestions(shlex.split(command)[-1])
            code, out, err = crosswalk(monkeypatch, capsys, *_arguments(command))
            assert code == 0, f"{command}\n{err}"
            for line in SHOWN.get(command, []):
                assert line in out, f"{command}: the README shows {line!r}; got\n{out}"
    finally:
        service.engine.served_suggesters.cache_clear()
    for written in ("suggestions.csv", "lab_suggestions.csv", "conceptmap.json", "fields.csv", "clinic-etl.md"):
        assert (work / written).stat().st_size > 0, written


def _arguments(command: str) -> list[str]:
    """The shell's work on a README line: words, quotes, and globs such as data/samples/hl7v2/*.hl7."""
    words = shlex.split(command)[1:]
    return [match for word in words for match in (sorted(glob.glob(word)) if "*" in word else [word])]


def _approve_top_suggestions(project: str) -> None:
    with transaction() as session:
        found = crud.get_project(session, project)
        target = served_terminologies().target(found.target_terminology)
        _, items = crud.list_items(session, found, Status.suggested, limit=5)
        for item in items:
            decisions.decide(session, found, item.code, DecisionCreate(action="approve"), "alice", item.version, target)
