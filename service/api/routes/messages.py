"""Messages in over HTTP, for engines that prefer it to MLLP, and the messages behind batches, alerts and items.

`POST /feeds/{feed}/messages` takes HL7 v2 (ER7) or FHIR JSON; each message is stored before the answer,
so an acknowledged message is never lost. The feed's waiting messages are cut into a monitored batch once
`batch_size` wait (or at once with `flush=true`), after the answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response

from ingest import fhir, mllp
from service.api.deps import allow
from service.api.problems import MAX_BODY_BYTES
from service.api.routes.feeds import FeedDep
from service.monitoring import alerts, lineage, messages
from service.store.errors import Invalid, TooLarge, Unsupported
from service.store.feeds import Feed
from service.store.messages import DeadLetterPublic, FhirReceipt, Lineage, MessagePublic
from service.web.deps import CurrentPrincipal, ProjectDep, SessionDep
from service.web.roles import Permission

log = logging.getLogger("crosswalk.api")
router = APIRouter(tags=["messages"])
ER7 = "x-application/hl7-v2+er7"
HL7_TYPES = (ER7, "application/hl7-v2", "text/plain")
FHIR_TYPES = ("application/fhir+json", "application/json", "application/fhir+ndjson", "application/x-ndjson")


_ACK_RESPONSE = {"description": "The HL7 v2 ACK (MSA-1 AA, AE or AR), or a FHIR receipt.", "content": {ER7: {}}}


async def _body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise TooLarge(f"message body over the {MAX_BODY_BYTES // 2**20} MB limit; send messages one by one")
    return bytes(body)


def _cut_later(background: BackgroundTasks, request: Request, feed: Feed, actor: str, size: int, due: bool) -> None:
    engine, home = request.app.state.engine, request.app.state.settings.home

    def run() -> None:
        try:
            while True:
                outcome, left = messages.cut_batch(engine, home, feed.id, actor, size, due)
                if outcome is None or left < size:
                    return
        except Exception:  # the messages are stored and stay waiting: the next cut scores them
            log.exception("feed %s: scoring a batch of messages failed", feed.name)

    background.add_task(run)


@router.post(
    "/feeds/{feed}/messages",
    **allow(Permission.monitor, 404, 413, 415, 422, ok=_ACK_RESPONSE),
    response_model=None,
)
async def post_messages(
    feed: FeedDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    request: Request,
    background: BackgroundTasks,
    batch_size: Annotated[int, Query(ge=1, le=100_000, description="Cut a batch once this many wait.")] = 500,
    flush: Annotated[bool, Query(description="Score every waiting message of the feed now.")] = False,
) -> Response:
    """Store HL7 v2 messages (x-application/hl7-v2+er7) or FHIR resources and Bundles (application/fhir+json),
    each before the answer: the ACK (AA stored, AE unreadable and kept as a dead letter, AR resend)."""
    session.commit()  # end the request's transaction: each message commits on its own before the answer
    kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if kind not in HL7_TYPES + FHIR_TYPES:
        raise Unsupported(f"content type {kind or '(none)'!r}: send {ER7} or application/fhir+json")
    body = await _body(request)
    fmt = "fhir" if kind in FHIR_TYPES else "hl7v2"
    store = messages.EngineStore(request.app.state.engine, feed, origin="http", fmt=fmt)
    if fmt == "fhir":
        response = await _fhir(store, body)
    else:
        receipt = await mllp.receive(body, store=store, dead_letter=store.dead_letter)
        # 422: unreadable, kept as a dead letter (resending will not help); 503: not kept at all, resend
        status = 200 if receipt.stored else 422 if receipt.dead_lettered else 503
        response = Response(receipt.ack or b"", status_code=status if receipt.ack else 202, media_type=ER7)
    if response.status_code < 300:
        _cut_later(background, request, feed, principal.name, batch_size, flush)
    return response


async def _fhir(store: messages.EngineStore, body: bytes) -> Response:
    documents = fhir.read_documents(body)
    if not documents:
        raise Invalid("empty body: send a FHIR resource, a Bundle or NDJSON")
    stored, dead = [], []
    for document in documents:
        if document.ok:
            stored.append(await asyncio.to_thread(store, document.raw))
        else:
            reason = f"line {document.line}: {document.error}"
            await asyncio.to_thread(store.dead_letter, document.raw, reason)
            dead.append(reason)
    receipt = FhirReceipt(stored=stored, dead_letters=dead)
    return Response(receipt.model_dump_json(), status_code=200 if stored else 422, media_type="application/json")


@router.get("/feeds/{feed}/dead-letters", response_model=list[DeadLetterPublic], **allow(Permission.read, 404, 422))
def dead_letters(
    feed: FeedDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetterPublic]:
    """Payloads the feed received that could not be read or kept, newest first, with the reason."""
    return [DeadLetterPublic.model_validate(d) for d in messages.list_dead_letters(session, feed, limit)]


@router.get(
    "/feeds/{feed}/batches/{number}/messages", response_model=list[MessagePublic], **allow(Permission.read, 404, 422)
)
def batch_messages(feed: FeedDep, session: SessionDep, number: int) -> list[MessagePublic]:
    """The stored messages a batch was cut from (an alert names its batches)."""
    return [MessagePublic.model_validate(m) for m in messages.batch_messages(session, feed, number)]


@router.get("/projects/{project_id}/messages", response_model=list[MessagePublic], **allow(Permission.read, 404, 422))
def item_messages(
    project: ProjectDep,
    session: SessionDep,
    code: Annotated[str, Query(min_length=1, max_length=200, description="The source code.")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[MessagePublic]:
    """The stored messages that carried a source code, newest first: where the item came from."""
    from service import crud

    item = crud.get_item(session, project, code)
    return [MessagePublic.model_validate(m) for m in messages.item_messages(session, item, limit)]


@router.get("/feeds/{feed}/alerts/{uid}/lineage", response_model=Lineage, **allow(Permission.read, 404, 422))
def alert_lineage(
    feed: FeedDep,
    session: SessionDep,
    uid: str,
    limit: Annotated[int, Query(ge=1, le=100_000, description="List at most this many messages.")] = 1000,
) -> Lineage:
    """The stored messages behind an alert: those of the batches that opened and last showed it, from its
    sending facility where its segment is one; a conformance alert's own messages are flagged."""
    return lineage.alert_lineage(session, feed, alerts.get_alert(session, feed, uid), limit=limit)
