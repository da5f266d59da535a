"""The review queue, one item at a time, its decisions and its history.

Decisions call the same functions as the API (`decisions.decide`, `decisions.confirm`, `decisions.revert`),
in the request's one transaction, as the logged-in token's owner: there is no second write path.
Forms work without JavaScript (POST, then 303 to the next item); static/ui.js adds the keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session

from service import audit, claims, crud, decisions
from service.concept_search import FACETS, needs_second_look, text_index
from service.crud_imports import ConceptSearch
from service.crud_imports import search as search_concepts
from service.store.errors import Invalid, StoreError
from service.store.tables import DecisionCreate, Project, SourceItem, Status
from service.ui import queue
from service.ui.evidence import SCORE_MEANING, explain
from service.ui.queue import Filters
from service.ui.render import RELATIONSHIPS, render
from service.ui.session import Browser, BrowserDep, FormDep
from service.web.deps import SessionDep, target_terminology
from service.web.roles import Permission

router = APIRouter(prefix="/ui/projects/{project_id}", include_in_schema=False)
SIMPLE_ACTIONS = ("approve", "reject", "flag", "unmappable")
MAX_PATH = 8  # hierarchy levels shown above a candidate


@router.get("", response_class=HTMLResponse)
def queue_page(
    request: Request, browser: BrowserDep, session: SessionDep, project_id: int, offset: Annotated[int, Query(ge=0)] = 0
):
    project = crud.get_project(session, project_id)
    filters = Filters.parse(request.query_params, browser.principal.name)
    total, rows = queue.page(session, project, filters, offset)
    return render(
        request,
        "queue.html",
        browser=browser,
        project=project,
        filters=filters,
        total=total,
        rows=rows,
        offset=offset,
        page_size=queue.PAGE_SIZE,
        choices=_filter_choices(session, project),
        band_of=queue.band_of,
        counts=queue.status_counts(session, project),
    )


def _filter_choices(session: Session, project: Project) -> dict[str, Any]:
    return {
        "status": queue.STATUS_CHOICES,
        "band": queue.BANDS,
        "reviewer": queue.reviewers(session, project),
        "domain": queue.domains(session, project),
    }


@router.get("/review", response_class=HTMLResponse)
def review_page(
    request: Request,
    browser: BrowserDep,
    session: SessionDep,
    project_id: int,
    pos: Annotated[int, Query(ge=0)] = 0,
    code: str | None = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    last: str | None = None,
    undone: str | None = None,
) -> HTMLResponse:
    project = crud.get_project(session, project_id)
    filters = Filters.parse(request.query_params, browser.principal.name)
    view = _view(session, project, filters, pos, code)
    if _claimable(view, browser, project) and not claims.claim(session, view.row.item, browser.principal.name):
        view = _view(session, project, filters, pos, code)  # a colleague took it a moment ago: the next one
    notice = _notice(session, project, last, undone)
    return _render_review(request, browser, session, project, filters, view, q=q, notice=notice)


def _claimable(view: View, browser: Browser, project: Project) -> bool:
    """An item this reviewer may act on next is held for them; their own proposal waits for others. An
    archived project is read-only: nobody acts on it."""
    item = view.row.item if view.row else None
    if item is None or project.archived or not browser.can(Permission.decide) or item.status not in queue.OPEN:
        return False
    return not (item.status == Status.pending and item.decided_by == browser.principal.name)


@dataclass
class View:
    """The item on screen and where it sits in the filtered queue."""

    row: queue.QueueRow | None
    total: int
    position: int | None  # None: opened by code, not in this queue
    requested: int = 0  # the queue position asked for: 'next' goes on from here when position is None

    @property
    def here(self) -> int:
        return self.requested if self.position is None else self.position


def _view(session: Session, project: Project, filters: Filters, pos: int, code: str | None) -> View:
    if code:  # opened by its code: shown whatever the filters, with its place in the queue if it has one
        row = queue.row_of(session, project, crud.get_item(session, project, code))
        return View(row, queue.count(session, project, filters), queue.position_of(session, project, filters, row), pos)
    total, row = queue.at(session, project, filters, pos)
    position = pos if row is None else min(pos, max(total - 1, 0))
    return View(row, total, position, position)


def _notice(session: Session, project: Project, last: str | None, undone: str | None) -> dict | None:
    """What the previous action did, read back from the store (never text taken from the URL)."""
    code = last or undone
    if not code:
        return None
    try:
        item = crud.get_item(session, project, code)
    except StoreError:
        return None
    return {"item": item, "undone": bool(undone)}


def _render_review(
    request: Request,
    browser: Browser,
    session: Session,
    project: Project,
    filters: Filters,
    view: View,
    q: str | None = None,
    notice: dict | None = None,
    error: str | None = None,
    status_code: int = 200,
    override: dict | None = None,
    second_look: dict | None = None,
) -> HTMLResponse:
    item = view.row.item if view.row else None
    context = _item_context(request, session, project, item) if item else {}
    if second_look and second_look["relationship"]:
        context["relationship"] = second_look["relationship"]  # the one chosen before the warning
    asked = SearchAsked.parse(request.query_params)
    return render(
        request,
        "review.html",
        status_code,
        browser=browser,
        project=project,
        filters=filters,
        view=view,
        item=item,
        notice=notice,
        error=error,
        q=q or "",
        asked=asked,
        second_look=second_look,
        results=_search(request, project, q, asked) if item and q else None,
        facets=_facets(request, project) if item and q else {},
        undo=decisions.undoable(session, project, browser.principal.name) if browser.can(Permission.decide) else None,
        band_of=queue.band_of,
        score_meaning=SCORE_MEANING,
        override=override,
        **context,
    )


def _item_context(request: Request, session: Session, project: Project, item: SourceItem) -> dict[str, Any]:
    terminology = _terminology(request, project)
    suggestions = crud.current_suggestions(session, item)
    paths = {s.code: _path(terminology, s.code) for s in suggestions} if terminology else {}
    default = item.relationship if item.relationship in RELATIONSHIPS else "equivalent"
    contested = crud.disagreement(session, item)
    return {
        "suggestions": suggestions,
        "confidence": crud.confidence_of(item.suggestion_batch_id, suggestions[0].score if suggestions else None),
        "paths": paths,
        "relationship": default,
        "evidence": explain(item.text, item.context or {}, suggestions, terminology),
        "history": audit.history(session, entity=audit.entity_of(item)),
        "model_version": crud.model_version_of(session, item),
        "comments": crud.comments(session, item),
        "disagreement": contested,
        "claim": claims.holder_of(session, item),
    }


def _terminology(request: Request, project: Project):
    """The target terminology, for hierarchy paths; the page still renders when it is not loaded."""
    try:
        return target_terminology(request, project.target_terminology).terminology
    except (StoreError, LookupError, OSError, ValueError):
        return None


def _path(terminology, code: str) -> list[tuple[str, str]]:
    """Ancestors from the root down to the concept's parent (first parent at each level)."""
    path: list[tuple[str, str]] = []
    concept = terminology.get(code)
    while concept is not None and concept.parents and len(path) < MAX_PATH:
        concept = terminology.get(concept.parents[0])
        if concept is None or any(c == concept.code for c, _ in path):
            break
        path.append((concept.code, concept.display))
    return path[::-1]


@dataclass(frozen=True)
class SearchAsked:
    """The search form's filters (named s_* so they never clash with the queue's own filters)."""

    filters: dict[str, str]
    include_inactive: bool

    @classmethod
    def parse(cls, params) -> SearchAsked:
        filters = {name: (params.get(f"s_{name}") or "").strip()[:200] for name in FACETS}
        return cls({k: v for k, v in filters.items() if v}, params.get("s_inactive") == "1")


def _search(request: Request, project: Project, q: str, asked: SearchAsked) -> ConceptSearch | str:
    """Concepts to remap to, as GET .../search finds them: exact code, text matches, then the model's ranking."""
    try:
        suggester = request.app.state.suggester_factory(project.target_terminology)
        return search_concepts(suggester, project, q, 10, asked.filters, asked.include_inactive)
    except StoreError as error:
        return error.detail


def _facets(request: Request, project: Project) -> dict[str, list[str]]:
    """The filterable attributes of the target terminology and their values (LOINC: class, system, ...)."""
    terminology = _terminology(request, project)
    return text_index(terminology).facets if terminology is not None else {}


# -- decisions ----------------------------------------------------------------------------------------
@router.post("/items/{code:path}/decide", response_class=HTMLResponse)
def decide(request: Request, browser: BrowserDep, session: SessionDep, form: FormDep, project_id: int, code: str):
    project = crud.get_project(session, project_id)
    filters, choice = Filters.parse(form, browser.principal.name), form.get("choice", "")
    pos = _int(form.get("pos")) or 0
    try:
        second_look = _second_look(request, project, choice, form)
        if second_look:
            view = _view(session, project, filters, pos, code)
            return _render_review(
                request, browser, session, project, filters, view, second_look=second_look, status_code=409
            )
        item = _apply(request, session, browser, project, code, choice, form)
    except StoreError as error:
        session.rollback()  # nothing of the refused decision stays; the page is read afresh
        view = _view(session, project, filters, pos, code)
        override = {"choice": choice, "comment": _comment(form) or "", "relationship": form.get("relationship", "")}
        return _render_review(
            request,
            browser,
            session,
            project,
            filters,
            view,
            error=error.detail,
            status_code=error.status,
            override=override if isinstance(error, decisions.OverrideNeeded) else None,
        )
    if choice == "revert":
        return _redirect(project, filters, pos=pos, code=code, undone=code)
    if choice == "comment":
        return _redirect(project, filters, pos=pos, code=code)
    claims.release(session, item, browser.principal.name)
    next_pos = pos + 1 if queue.matches(session, project, filters, item) else pos
    return _redirect(project, filters, pos=next_pos, last=code)


def _second_look(request: Request, project: Project, choice: str, form: dict[str, str]) -> dict | None:
    """Choosing a discouraged, deprecated or inactive concept (a search hit, or a candidate suggested before
    the terminology deprecated it) asks once more before it is decided."""
    action, _, target = choice.partition(":")
    if action not in ("remap", "pick") or not target or form.get("second_look") == target:
        return None
    terminology = _terminology(request, project)
    concept = terminology.get(target) if terminology is not None else None
    reason = needs_second_look(concept) if concept is not None else None
    if not reason:
        return None
    relationship = form.get("relationship") if form.get("relationship") in RELATIONSHIPS else None
    comment = _comment(form)
    return {"concept": concept, "reason": reason, "choice": choice, "comment": comment, "relationship": relationship}


def _apply(
    request: Request, session: Session, browser: Browser, project: Project, code: str, choice: str, form: dict[str, str]
) -> SourceItem:
    actor, version = browser.principal.name, _int(form.get("version"))
    if choice == "confirm":
        browser.require(Permission.confirm)
        return decisions.confirm(session, project, code, actor, version, _comment(form))
    browser.require(Permission.decide)
    if choice == "revert":
        return decisions.revert(session, project, code, actor, version)
    if choice == "comment":
        text = _comment(form)
        if not text:
            raise Invalid("the comment is empty; write what the next reviewer should know")
        item = crud.get_item(session, project, code)
        decisions.add_comment(session, item, actor, text)
        return item
    target = target_terminology(request, project.target_terminology)
    return decisions.decide(session, project, code, _decision(choice, form), actor, version, target)


def _decision(choice: str, form: dict[str, str]) -> DecisionCreate:
    """`approve`, `reject`, `flag`, `unmappable`, `pick:<code>` (a candidate) or `remap:<code>` (a search hit)."""
    action, _, target = choice.partition(":")
    relationship = form.get("relationship") if form.get("relationship") in RELATIONSHIPS else None
    override = form.get("override") == "1"  # the reviewer confirmed replacing a colleague's decision
    if action in SIMPLE_ACTIONS and not target:
        return DecisionCreate(
            action=action,
            relationship=relationship if action == "approve" else None,
            comment=_comment(form),
            override=override,
        )
    if action in ("pick", "remap") and target:
        kind = "approve" if action == "pick" else "remap"
        return DecisionCreate(
            action=kind, target_code=target, relationship=relationship, comment=_comment(form), override=override
        )
    if not choice:
        raise Invalid("no decision was chosen: press a decision button or its key (Enter in a text box never decides)")
    raise Invalid(f"unknown action {choice!r}; use the buttons or keys shown on the page")


def _comment(form: dict[str, str]) -> str | None:
    # kept_comment: the comment sent with a remap that was asked about once more (see _second_look)
    comment = (form.get("comment") or form.get("kept_comment") or "").strip()
    if len(comment) > 4000:
        raise Invalid("the comment is over 4,000 characters; shorten it")
    return comment or None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def _redirect(project: Project, filters: Filters, **extra: Any) -> RedirectResponse:
    return RedirectResponse(f"/ui/projects/{project.id}/review?{filters.query(**extra)}", status_code=303)


# -- history ------------------------------------------------------------------------------------------
@router.get("/items/{code:path}/history", response_class=HTMLResponse)
def history_page(
    request: Request, browser: BrowserDep, session: SessionDep, project_id: int, code: str
) -> HTMLResponse:
    project = crud.get_project(session, project_id)
    item = crud.get_item(session, project, code)
    events = audit.history(session, entity=audit.entity_of(item))
    return render(request, "history.html", browser=browser, project=project, item=item, history=events, statuses=Status)
