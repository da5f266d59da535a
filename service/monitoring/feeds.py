"""Feeds and their batches: the monitors' library (`monitors/`) run inside the review store.

A batch is read once, profiled once and scored against the reference *profile*; its profile is kept, so a
window of batches is a merge of kept profiles (`window_report`) and the anomaly check's history never
re-reads data. Alerts are reconciled by `monitors.alerts.process_batch` on the `feed_alert` table and the
events worth a message are queued in the webhook outbox, all in the caller's transaction.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import re
import secrets
import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError, field_validator
from sqlalchemy import func
from sqlmodel import Field, Session, SQLModel, col, select

from monitors.alerts import Alert, AlertEvent, process_batch
from monitors.batches import BatchError, read_batch
from monitors.checks import CheckConfig
from monitors.contract import Contract, ContractError, infer_contract
from monitors.profile import Profile, merge_all, profile_frame
from monitors.report import MonitorReport, evidently_html, score_profiles, summarise
from monitors.rules import PlausibilityRules
from service import audit
from service.crud import by_id_or_name
from service.monitoring import files
from service.monitoring.alerts import StoreAlerts, active_counts, plain
from service.monitoring.field_roles import fields_project, roles_for
from service.monitoring.outbox import queue_events
from service.settings import Settings
from service.store.errors import Conflict, Invalid, NotFound, StaleVersion, Unavailable
from service.store.feeds import BatchPublic, Feed, FeedBatch, FeedPublic, FeedWebhook, WebhookCreate
from service.store.tables import Project, SourceItem, Status, utcnow

log = logging.getLogger("crosswalk.monitoring")
HISTORY = 30  # past batch profiles the batch-anomaly check learns from
EVIDENTLY_ROWS = 20_000  # rows of each side in the drill-down report: it is for eyes, not for alerting
NO_REPORT_FROM_MESSAGES = "no Evidently report for batches cut from messages: compare a window of batches instead"
NO_REPORT_ON_DASK = "no Evidently report for batches scored on Dask (the rows never come into one process)"
SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".parquet", ".pq", ".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
DASK_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".parquet", ".pq")  # what monitors.scale reads in blocks


class FeedCreate(SQLModel):
    name: str = Field(min_length=1, max_length=200, description="Unique, e.g. 'st-mary-labs'.")
    description: str | None = Field(default=None, max_length=4000)
    segment_columns: list[str] | None = Field(
        default=None, description="Columns to split by (site, sending facility); default: guessed from names."
    )
    mapping_project_id: int | None = Field(
        default=None, description="Review project whose approved mappings decide which codes are unmapped."
    )
    mapped_columns: list[str] = Field(
        default_factory=list, description="Code columns that project maps (default: every code column)."
    )
    dask_scheduler: str | None = Field(
        default=None,
        max_length=400,
        description="Dask cluster (tcp://HOST:PORT, local:N) that profiles this feed's globs and large batch "
        "files; default: CROSSWALK_DASK_SCHEDULER.",
    )
    fields_project_id: int | None = Field(
        default=None,
        description="Field-mapping project whose approved mappings say what the columns are (over inference).",
    )

    @field_validator("dask_scheduler")
    @classmethod
    def _dask_address(cls, address: str | None) -> str | None:
        from service.cluster import check_address

        return None if address is None else check_address(address)


class FeedUpdate(SQLModel):
    fields_project_id: int | None = Field(
        default=None,
        description="Link a field-mapping project (its approved mappings give the columns' roles); null unlinks.",
    )
    infer_contract: bool = Field(
        default=False,
        description="Drop an explicitly set contract and infer it again (with the field project's roles).",
    )


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    content_type: str = ""  # as the client declared it; "" when it did not


@dataclass(frozen=True)
class ProfiledBatch:
    """A batch profiled where it lives (files on a Dask cluster), before the store is locked: the store
    keeps its profile and alerts; no Evidently drill-down (that needs the rows in memory)."""

    filename: str
    sha256: str  # of the files' bytes, in name order
    profile: Profile
    contract: dict[str, Any]  # the feed's contract it was profiled under: scored only while still the feed's
    report_note: str = NO_REPORT_ON_DASK  # why the batch has no Evidently drill-down


@dataclass
class ScoredAhead:
    """A profiled batch's monitors run before the store is locked (the anomaly model alone fits for a third
    of a second): `post_batch` uses them while the feed's next batch number and contract are still these."""

    number: int
    contract: dict[str, Any]
    report: MonitorReport


def score_ahead(session: Session, home: Path, feed: Feed, profiled: ProfiledBatch) -> ScoredAhead:
    """Run the monitors on `profiled` against what the store holds now; reads only. A review decision made
    before the write lock is taken is seen by the next batch (as if this one had arrived a moment earlier)."""
    number = _next_number(session, feed)
    reference = files.read_profile(home, feed.reference_profile, feed.reference_profile_sha256)
    report = _run_monitors(
        session, home, feed, reference, profiled.profile, Contract.from_dict(profiled.contract), number
    )
    return ScoredAhead(number, profiled.contract, report)


def _next_number(session: Session, feed: Feed) -> int:
    return (session.exec(select(func.max(FeedBatch.number)).where(FeedBatch.feed_id == feed.id)).one() or 0) + 1


def _run_monitors(
    session: Session, home: Path, feed: Feed, reference: Profile, profile: Profile, contract: Contract, number: int
) -> MonitorReport:
    """Batch `number`'s profile against the reference, the feed's approved codes and its recent batches."""
    return score_profiles(
        reference,
        profile,
        contract,
        feed=feed.name,
        batch_id=str(number),
        approved=approved_codes(session, feed, contract),
        history=_history(session, home, feed),
    )


def profile_in_memory(feed: Feed, upload: Upload, report_note: str = NO_REPORT_FROM_MESSAGES) -> ProfiledBatch:
    """An upload read and profiled here, before the store is locked (a listener's batches: the store's
    writers wait only for the scoring against the reference, not for reading and profiling the rows)."""
    contract = Contract.from_dict(feed.contract)
    frame = read_upload(upload, contract)
    segment = contract.segment_columns[0] if contract.segment_columns else None
    profile = profile_frame(frame, contract, segment, PlausibilityRules())
    sha256 = files.sha256_bytes(upload.data)
    return ProfiledBatch(safe_name(upload.filename), sha256, profile, plain(contract.to_dict()), report_note)


# -- reading uploads --------------------------------------------------------------------------------
def safe_name(filename: str | None) -> str:
    """The upload's base name with odd characters replaced; it picks the reader (CSV, Parquet, NDJSON)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename or "").name).strip("._") or "upload"
    return name if name.lower().endswith(SUFFIXES) else name + ".csv"


def read_upload(upload: Upload, contract: Contract | None = None) -> pd.DataFrame:
    """The upload as a frame, or Invalid (422) with the reader's one-line reason, naming the upload."""
    name = safe_name(upload.filename)
    if not upload.data.strip():
        raise Invalid(f"{name}: empty batch (no bytes)")
    with tempfile.TemporaryDirectory(prefix="crosswalk-batch-") as folder:
        path = Path(folder) / name
        path.write_bytes(upload.data)
        try:
            return read_batch(path, contract)
        except BatchError as error:
            raise Invalid(str(error).replace(str(path), name)) from None


# -- feeds ------------------------------------------------------------------------------------------
def get_feed(session: Session, ref: int | str) -> Feed:
    """A feed by id, or by name (paths and the CLI accept either)."""
    feed = by_id_or_name(session, Feed, ref)
    if feed is None:
        raise NotFound(f"no feed {str(ref)!r}; `crosswalk feed list` or GET /feeds shows the feeds")
    return feed


def list_feeds(session: Session) -> list[Feed]:
    return list(session.exec(select(Feed).order_by(Feed.id)))


def feed_public(session: Session, feed: Feed) -> FeedPublic:
    batches = session.exec(select(func.count()).where(FeedBatch.feed_id == feed.id)).one()
    return FeedPublic.model_validate(
        feed,
        update={
            "segment_columns": feed.contract.get("segment_columns", []),
            "batches": batches,
            "active_alerts": active_counts(session, feed),
        },
    )


def valid_feed(model: type[SQLModel] = FeedCreate, **fields: Any) -> Any:
    try:
        return model(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        raise Invalid(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def create_feed(session: Session, home: Path, data: FeedCreate, reference: Upload, actor: str) -> Feed:
    """Register a feed: its reference upload is kept, its contract inferred, its reference profiled once."""
    audit.lock_chain(session)
    if session.exec(select(Feed).where(Feed.name == data.name)).first():
        raise Conflict(f"a feed named {data.name!r} already exists; choose another name")
    if data.mapping_project_id is not None and session.get(Project, data.mapping_project_id) is None:
        raise Invalid(f"mapping_project_id: no project {data.mapping_project_id}")
    if data.fields_project_id is not None:
        fields_project(session, home, data.fields_project_id)
    frame = read_upload(reference)
    _require_columns(frame, data.segment_columns or [], "segment column")
    roles = roles_for(session, data.fields_project_id, list(frame.columns))
    contract = infer_contract(
        frame, feed=data.name, segment_columns=data.segment_columns, roles=roles.roles, pairs=roles.pairs
    )
    _require_columns(frame, data.mapped_columns, "mapped column")
    folder = home / files.ROOT / f"{_slug(data.name)}-{secrets.token_hex(4)}"
    name = safe_name(reference.filename)
    written: list[str] = []
    try:
        ref_file, ref_sha = files.write_bytes(home, folder / f"reference{_suffix(name)}", reference.data)
        written.append(ref_file)
        profile_file, profile_sha = _write_reference_profile(home, folder, frame, contract, version=1)
        written.append(profile_file)
        feed = Feed(
            **data.model_dump(exclude={"segment_columns"}),
            contract=plain(contract.to_dict()),
            field_roles=plain(roles.to_dict()),
            reference_filename=name,
            reference_file=ref_file,
            reference_sha256=ref_sha,
            reference_rows=len(frame),
            reference_profile=profile_file,
            reference_profile_sha256=profile_sha,
            created_by=actor,
        )
        audit.record(session, actor, "feed.create", feed)
    except BaseException:
        files.remove(home, written)
        raise
    return feed


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "feed"


def _suffix(name: str) -> str:
    lowered = name.lower()
    return next(s for s in sorted(SUFFIXES, key=len, reverse=True) if lowered.endswith(s))


def _require_columns(frame: pd.DataFrame, names: list[str], what: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise Invalid(
            f"{what} {', '.join(map(repr, missing))} not in the reference; its columns: {', '.join(map(str, frame.columns))}"
        )


def _write_reference_profile(
    home: Path, folder: Path, frame: pd.DataFrame, contract: Contract, version: int
) -> tuple[str, str]:
    segment = contract.segment_columns[0] if contract.segment_columns else None
    profile = profile_frame(frame, contract, segment, PlausibilityRules())
    return files.write_profile(home, folder / f"reference-v{version}.profile.json.gz", profile)


def folder_of(home: Path, feed: Feed) -> Path:
    return home / Path(feed.reference_file).parent


def reference_frame(home: Path, feed: Feed) -> pd.DataFrame:
    data = files.read_checked(home, feed.reference_file, feed.reference_sha256)
    return read_upload(Upload(feed.reference_filename, data))


# -- the contract -----------------------------------------------------------------------------------
def _lock_at_version(session: Session, feed: Feed, version: int | None, hint: str) -> None:
    """Take the write lock and re-read the feed; StaleVersion (with the current feed) when an edit based on
    `version` (If-Match; None: any) would overwrite a change made since."""
    audit.lock_chain(session)
    session.refresh(feed)
    if version is not None and version != feed.version:
        raise StaleVersion(
            f"feed {feed.name!r} changed since version {version} (now version {feed.version}); {hint}",
            {"current": feed_public(session, feed).model_dump(mode="json")},
        )


def update_contract(
    session: Session, home: Path, feed: Feed, data: dict[str, Any], actor: str, version: int | None
) -> Feed:
    """Replace the contract (checked against the reference) and re-profile the reference under it."""
    _lock_at_version(session, feed, version, "reload the contract and edit again")
    try:
        contract = Contract.from_dict({**data, "feed": feed.name})
    except ContractError as error:
        raise Invalid(str(error)) from None
    if plain(contract.to_dict()) == feed.contract:
        return feed
    frame = reference_frame(home, feed)
    _check_contract(contract, frame)
    profile_file, profile_sha = _write_reference_profile(home, folder_of(home, feed), frame, contract, feed.version + 1)
    changes = {
        "contract": plain(contract.to_dict()),
        "contract_set_by": actor,
        "reference_profile": profile_file,
        "reference_profile_sha256": profile_sha,
    }
    audit.record(session, actor, "feed.contract", feed, changes)
    return feed


def update_feed(session: Session, home: Path, feed: Feed, data: FeedUpdate, actor: str, version: int | None) -> Feed:
    """Link or unlink the feed's field-mapping project, or drop its explicit contract; an inferred contract is
    inferred again with the (new) roles and the reference re-profiled, in the same audited change."""
    _lock_at_version(session, feed, version, "reload it and edit again")
    changes: dict[str, Any] = {}
    if "fields_project_id" in data.model_fields_set:
        if data.fields_project_id is not None:
            fields_project(session, home, data.fields_project_id)
        changes["fields_project_id"] = data.fields_project_id
    if data.infer_contract:
        changes["contract_set_by"] = None
    if changes.get("contract_set_by", feed.contract_set_by) is None:
        project = changes.get("fields_project_id", feed.fields_project_id)
        changes |= _inferred_contract(session, home, feed, project)
    audit.record(session, actor, "feed.update", feed, changes)
    return feed


def refresh_field_roles(session: Session, home: Path, feed: Feed, actor: str) -> None:
    """Mappings approved (or revoked) since the contract was inferred reach it before the next batch is scored;
    an explicitly set contract is left alone."""
    if feed.fields_project_id is None or feed.contract_set_by is not None:
        return
    roles = roles_for(session, feed.fields_project_id, Contract.from_dict(feed.contract).names())
    if plain(roles.to_dict()) != feed.field_roles:
        changes = _inferred_contract(session, home, feed, feed.fields_project_id)
        audit.record(session, actor, "feed.contract", feed, changes)


def _inferred_contract(session: Session, home: Path, feed: Feed, project_id: int | None) -> dict[str, Any]:
    """The changes that make the feed's contract the one inferred from its reference with the project's roles
    (the feed's segment columns kept); only the roles when the contract already is that one."""
    frame = reference_frame(home, feed)
    roles = roles_for(session, project_id, list(frame.columns))
    mapped_sites = {c for c, r in feed.field_roles.get("roles", {}).items() if r["role"] == "site"}
    segments = [c for c in feed.contract.get("segment_columns", []) if c not in mapped_sites] or None
    contract = infer_contract(frame, feed=feed.name, segment_columns=segments, roles=roles.roles, pairs=roles.pairs)
    changes: dict[str, Any] = {"field_roles": plain(roles.to_dict())}
    if plain(contract.to_dict()) != feed.contract:
        profile_file, profile_sha = _write_reference_profile(
            home, folder_of(home, feed), frame, contract, feed.version + 1
        )
        changes |= {
            "contract": plain(contract.to_dict()),
            "reference_profile": profile_file,
            "reference_profile_sha256": profile_sha,
        }
    return changes


def _check_contract(contract: Contract, frame: pd.DataFrame) -> None:
    _require_columns(frame, contract.names(), "contract column")
    names = set(contract.names())
    referenced = {
        "segment_columns": contract.segment_columns,
        "row_key_columns": contract.row_key_columns,
        "value_unit_pairs": [n for p in contract.value_unit_pairs for n in (p.value, p.unit, p.code)],
        "patient_column": [contract.patient_column] if contract.patient_column else [],
    }
    for field, used in referenced.items():
        unknown = [n for n in used if n not in names]
        if unknown:
            raise Invalid(f"contract {field}: {', '.join(map(repr, unknown))} not among the contract's columns")


# -- webhooks ---------------------------------------------------------------------------------------
def add_webhook(session: Session, home: Path, feed: Feed, data: WebhookCreate, actor: str) -> FeedWebhook:
    """Configure a receiver; its secret goes to a private file, only its sha256 into the store."""
    if session.exec(select(FeedWebhook).where(FeedWebhook.feed_id == feed.id, FeedWebhook.url == data.url)).first():
        raise Conflict(f"feed {feed.name!r} already posts to {data.url}")
    name = f"webhook-{secrets.token_hex(8)}.secret"
    secret_file, secret_sha = files.write_bytes(home, folder_of(home, feed) / name, data.secret.encode())
    row = FeedWebhook(
        feed_id=feed.id,
        secret_file=secret_file,
        secret_sha256=secret_sha,
        created_by=actor,
        **data.model_dump(exclude={"secret"}),
    )
    try:
        audit.record(session, actor, "webhook.create", row)
    except BaseException:
        files.remove(home, [secret_file])
        raise
    return row


def list_webhooks(session: Session, feed: Feed) -> list[FeedWebhook]:
    return list(session.exec(select(FeedWebhook).where(FeedWebhook.feed_id == feed.id).order_by(FeedWebhook.id)))


# -- batches ----------------------------------------------------------------------------------------
def _mapping_drift(
    session: Session,
    home: Path,
    feed: Feed,
    batch: str,
    reference: Profile,
    profile: Profile,
    contract: Contract,
    actor: str,
) -> list[Alert]:
    """Approved mappings of the feed's project whose data drifted in this batch, re-opened (one alert each)."""
    if feed.mapping_project_id is None:
        return []
    from service.engine import terminologies  # the project's target, read from the catalog
    from service.monitoring.mapping_drift import reopen_drifting, target_concepts

    project = session.get(Project, feed.mapping_project_id)
    concepts = target_concepts(project.target_terminology, terminologies(Settings(home=home)).get)
    return reopen_drifting(session, feed, batch, reference, profile, contract, concepts, actor)


def profile_files(contract: Contract, pattern: str, scheduler: str) -> ProfiledBatch:
    """Files too large for one process (a path or a glob of CSV or Parquet) profiled under the feed's
    contract, partition by partition on the Dask cluster at `scheduler`; the profile merges exactly, so it
    scores as if read here."""
    from monitors.scale import profile_dask, read_dask
    from service.cluster import ClusterError, dask_client

    segment = contract.segment_columns[0] if contract.segment_columns else None
    try:
        with dask_client(scheduler):
            profile = profile_dask(read_dask(pattern, contract), contract, segment, PlausibilityRules())
    except BatchError as error:
        raise Invalid(str(error)) from None
    except ClusterError as error:
        raise Unavailable(str(error)) from None
    name = safe_name(Path(pattern).name.replace("*", "_"))
    return ProfiledBatch(name, _files_sha256(pattern), profile, plain(contract.to_dict()))


def cluster_for_upload(settings: Settings, feed: Feed, upload: Upload) -> str | None:
    """The Dask cluster that profiles an uploaded batch: the feed's, or the configured one, for an upload of
    `dask_min_bytes` and more that Dask reads in blocks (CSV, TSV, Parquet); else None (in memory)."""
    from service.cluster import scheduler_for_size

    if not safe_name(upload.filename).lower().endswith(DASK_SUFFIXES):
        return None
    return scheduler_for_size(settings, len(upload.data), feed.dask_scheduler)


def profile_upload(home: Path, feed: Feed, contract: Contract, upload: Upload, scheduler: str) -> ProfiledBatch:
    """An upload profiled on the Dask cluster at `scheduler`, from a private file in the feed's folder (a
    remote cluster's workers see CROSSWALK_HOME, as they do for batch mapping), removed afterwards."""
    name = safe_name(upload.filename)
    if not upload.data.strip():
        raise Invalid(f"{name}: empty batch (no bytes)")
    kept, sha256 = files.write_bytes(
        home, folder_of(home, feed) / f"incoming-{secrets.token_hex(8)}-{name}", upload.data
    )
    try:
        profiled = profile_files(contract, str(home / kept), scheduler)
    except Invalid as error:  # the reader names the file: name the upload instead
        raise Invalid(error.detail.replace(str(home / kept), name)) from None
    finally:
        files.remove(home, [kept])
    return ProfiledBatch(name, sha256, profiled.profile, profiled.contract)


def _files_sha256(pattern: str) -> str:
    digest = hashlib.sha256()
    for name in sorted(glob.glob(pattern)):
        with open(name, "rb") as handle:
            while chunk := handle.read(2**20):
                digest.update(chunk)
    return digest.hexdigest()


def post_batch(
    session: Session,
    home: Path,
    feed: Feed,
    upload: Upload | ProfiledBatch,
    actor: str,
    *,
    extra_alerts: Sequence[Alert] = (),
    extra_segments: frozenset[str] | set[str] = frozenset(),
    evidently: bool = True,
    scored: ScoredAhead | None = None,
) -> tuple[FeedBatch, list[AlertEvent]]:
    """Score one batch: read, profile once, compare with the reference profile, reconcile alerts, queue
    webhook messages, keep the profile and an Evidently drill-down. A bad batch changes nothing.

    `extra_alerts` are findings the caller made on the same batch (structural checks of the messages it
    came from), reconciled with the monitors' own; `extra_segments` the segments those checks covered.
    `evidently=False` skips the HTML drill-down (seconds of work a listener cannot hold its store for);
    `scored` are the monitors' findings made before the lock (`score_ahead`), used while still current."""
    audit.lock_chain(session)  # batch numbers and alert dedup see every earlier batch of the feed
    if isinstance(upload, ProfiledBatch):
        # profiled before the lock, under the contract its caller read after refreshing the field roles: the
        # contract may have been edited meanwhile, and a profile scores only under its own contract
        session.refresh(feed)
        if upload.contract != feed.contract:
            raise Conflict(f"feed {feed.name!r}: its contract changed while the batch was profiled; post it again")
    else:
        refresh_field_roles(session, home, feed, actor)
    contract = Contract.from_dict(feed.contract)
    if isinstance(upload, ProfiledBatch):
        frame, profile, sha256 = None, upload.profile, upload.sha256
    else:
        frame, sha256 = read_upload(upload, contract), files.sha256_bytes(upload.data)
        segment = contract.segment_columns[0] if contract.segment_columns else None
        profile = profile_frame(frame, contract, segment, PlausibilityRules())
    number = _next_number(session, feed)
    reference = files.read_profile(home, feed.reference_profile, feed.reference_profile_sha256)  # read once
    if scored is not None and scored.number == number and scored.contract == feed.contract:
        report = scored.report
    else:  # scored against an older state (another batch, an edited contract): score again under the lock
        report = _run_monitors(session, home, feed, reference, profile, contract, number)
    drifted = _mapping_drift(session, home, feed, str(number), reference, profile, contract, actor)
    events = process_batch(
        StoreAlerts(session, feed, actor),
        feed.name,
        str(number),
        [*report.alerts, *extra_alerts, *drifted],
        set(report.scored_segments) | set(extra_segments),
        utcnow(),
    )
    queue_events(session, feed, events, actor)
    folder, stem = folder_of(home, feed), f"batch-{number:06d}"
    written: list[str] = []
    try:
        profile_file, profile_sha = files.write_profile(home, folder / f"{stem}.profile.json.gz", profile)
        written.append(profile_file)
        report_file, note = (
            _evidently(home, feed, frame, contract, folder / f"{stem}.html")
            if evidently and frame is not None
            else (None, NO_REPORT_FROM_MESSAGES if frame is not None else upload.report_note)
        )
        written += [report_file] if report_file else []
        batch = FeedBatch(
            feed_id=feed.id,
            number=number,
            filename=safe_name(upload.filename),
            sha256=sha256,
            rows=profile.n_rows,
            received_by=actor,
            profile_file=profile_file,
            profile_sha256=profile_sha,
            report_file=report_file,
            report_note=note,
            summary=plain(_summary(report, events)),
            alerts=plain([_alert_line(e) for e in events if e.kind != "resolved"]),
        )
        audit.record(session, actor, "batch.post", batch)
    except BaseException:
        files.remove(home, written)
        raise
    return batch, events


def approved_codes(session: Session, feed: Feed, contract: Contract) -> dict[str, set[str]] | None:
    """Codes with an approved mapping in the feed's review project, for each mapped code column."""
    if feed.mapping_project_id is None:
        return None
    query = select(SourceItem.code).where(
        SourceItem.project_id == feed.mapping_project_id, SourceItem.status == Status.approved
    )
    codes = set(session.exec(query))
    return {column: codes for column in feed.mapped_columns or contract.code_columns}


def _history(session: Session, home: Path, feed: Feed) -> list[Profile]:
    """The kept profiles of the feed's last batches, oldest first (the anomaly check's history)."""
    query = select(FeedBatch).where(FeedBatch.feed_id == feed.id).order_by(col(FeedBatch.number).desc()).limit(HISTORY)
    return [files.read_profile(home, b.profile_file, b.profile_sha256) for b in reversed(session.exec(query).all())]


def _evidently(
    home: Path, feed: Feed, frame: pd.DataFrame, contract: Contract, path: Path
) -> tuple[str | None, str | None]:
    """Evidently's DataDriftPreset for drill-down. Its failure never blocks scoring: the note says why."""
    try:
        reference = reference_frame(home, feed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's divide-by-zero chatter on empty categories
            evidently_html(_sample(reference), _sample(frame), path, contract)
        return files.relative(home, path), None
    except Exception as error:  # evidently raises many types on odd columns; the alerts do not depend on it
        log.warning("no Evidently report for feed %s: %s", feed.id, type(error).__name__)
        path.unlink(missing_ok=True)
        return None, f"Evidently could not build a report: {type(error).__name__}: {str(error)[:300]}"


def _sample(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if len(frame) <= EVIDENTLY_ROWS else frame.sample(EVIDENTLY_ROWS, random_state=0)


def _summary(report: MonitorReport, events: list[AlertEvent]) -> dict[str, Any]:
    return {
        "tests": report.tests,
        "segment_column": report.segment_column,
        "segments": report.segments,
        "alerts": summarise(report.alerts),
        "events": dict(Counter(e.kind for e in events)),
        "resolved": [e.alert.id for e in events if e.kind == "resolved"],
    }


def _alert_line(event: AlertEvent) -> dict[str, Any]:
    a = event.alert
    return {
        "uid": a.id,
        "event": event.kind,
        "check": a.check,
        "column": a.column,
        "segment": a.segment,
        "severity": a.severity,
        "statistic": a.statistic,
        "threshold": a.threshold,
        "message": a.message,
    }


def list_batches(session: Session, feed: Feed, offset: int = 0, limit: int = 100) -> list[FeedBatch]:
    query = select(FeedBatch).where(FeedBatch.feed_id == feed.id).order_by(col(FeedBatch.number).desc())
    return list(session.exec(query.offset(offset).limit(limit)))


def get_batch(session: Session, feed: Feed, number: int) -> FeedBatch:
    batch = session.exec(select(FeedBatch).where(FeedBatch.feed_id == feed.id, FeedBatch.number == number)).first()
    if batch is None:
        raise NotFound(f"feed {feed.name!r} has no batch {number}")
    return batch


def batch_public(batch: FeedBatch) -> BatchPublic:
    return BatchPublic.model_validate(batch, update={"has_report": batch.report_file is not None})


def report_html(home: Path, feed: Feed, batch: FeedBatch) -> Path:
    if batch.report_file is None:
        raise NotFound(f"batch {batch.number} of feed {feed.name!r} has no Evidently report: {batch.report_note}")
    path = home / batch.report_file
    if not path.is_file():
        raise NotFound(f"batch {batch.number}'s report file {batch.report_file} is missing under {home}")
    return path


def window_report(session: Session, home: Path, feed: Feed, first: int, last: int) -> dict[str, Any]:
    """Batches first..last as one window (a merge of their kept profiles, no data re-read) against the
    reference: slow drifts too small for one batch's tests show over a month of batches. Nothing is stored."""
    if first > last:
        raise Invalid(f"window {first}..{last}: first must not be after last")
    query = select(FeedBatch).where(FeedBatch.feed_id == feed.id, FeedBatch.number >= first, FeedBatch.number <= last)
    batches = list(session.exec(query.order_by(FeedBatch.number)))
    if not batches:
        raise NotFound(f"feed {feed.name!r} has no batches in {first}..{last}")
    contract = Contract.from_dict(feed.contract)
    window = merge_all([files.read_profile(home, b.profile_file, b.profile_sha256) for b in batches])
    reference = files.read_profile(home, feed.reference_profile, feed.reference_profile_sha256)
    report = score_profiles(
        reference,
        window,
        contract,
        feed=feed.name,
        batch_id=f"{first}..{last}",
        approved=approved_codes(session, feed, contract),
        config=CheckConfig(),
    )
    return plain({**report.to_dict(), "batches": [b.number for b in batches]})
