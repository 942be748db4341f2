"""``/audit/events``: the audit trail, filtered by user, actor, action and time, newest first."""

from __future__ import annotations

from flask import Blueprint
from flask import Response

from . import context
from . import models
from . import representations
from .operations import Answer
from .operations import Operation
from .operations import operation
from .paging import decode_cursor
from .paging import next_cursor
from .responses import model_response

TAG = "Audit"


def register(bp: Blueprint) -> None:
    """Add the audit operation to the blueprint."""

    @operation(
        bp,
        Operation(
            "GET",
            "/audit/events",
            "listAuditEvents",
            "Query the audit trail",
            "Every change, newest first: who acted (`actor`), what they did (`action`, e.g. "
            "`user.suspended`), on what (`target`) and the changes. Filters combine; paged by "
            "cursor or offset.",
            TAG,
            (Answer(200, "A page of events.", models.AuditEventList),),
            scope="audit:read",
            query=models.AuditQuery,
        ),
    )
    def list_audit_events(query: models.AuditQuery) -> Response:
        page = context.reader().audit_events(
            user_id=query.user_id,
            actor=query.actor,
            action=query.action,
            since=query.since,
            until=query.until,
            before=decode_cursor(query.cursor),
            offset=query.offset,
            limit=query.limit,
        )
        return model_response(
            models.AuditEventList(
                items=[representations.audit_event(event) for event in page.items],
                total=page.total,
                next_cursor=next_cursor(page),
            )
        )
