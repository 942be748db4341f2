"""Sync and mail status: what the outbox still owes LDAP and the mail server, and parked jobs."""

from __future__ import annotations

from flask import Blueprint
from flask import url_for
from werkzeug.wrappers import Response

from ..pages import render_page
from ..pages import see_other
from ..visitor import request_info
from .common import actor
from .common import notice_from
from .common import state

NOTICES = {
    "retried": "The job is queued again; the worker tries it within a few seconds.",
    "retried-many": "{count} jobs are queued again.",
    "retry-none": "No job was waiting for a retry.",
}

KIND_LABELS = {"email": "Email", "ldap": "LDAP sync"}


def status() -> Response:
    """Queue depth and lag per kind, and the parked jobs with their errors."""
    outbox = state().outbox
    return render_page(
        "admin/status.html",
        queues=outbox.queues(),
        parked=outbox.parked(),
        kind_labels=KIND_LABELS,
        notice=notice_from(NOTICES),
    )


def _retried(requeued: list[int]) -> Response:
    if not requeued:
        return see_other(url_for("admin.status", notice="retry-none"))
    if len(requeued) == 1:
        return see_other(url_for("admin.status", notice="retried"))
    return see_other(url_for("admin.status", notice="retried-many", count=len(requeued)))


def retry_job(job_id: int) -> Response:
    """Queue one parked job again."""
    return _retried(state().outbox.retry([job_id], actor(), request_info()))


def retry_all() -> Response:
    """Queue every parked job again."""
    return _retried(state().outbox.retry(None, actor(), request_info()))


def register(bp: Blueprint) -> None:
    """Add the status page and its retry buttons."""
    bp.add_url_rule("/status", view_func=status, endpoint="status")
    bp.add_url_rule(
        "/status/jobs/<int:job_id>/retry",
        view_func=retry_job,
        methods=["POST"],
        endpoint="status_retry_job",
    )
    bp.add_url_rule(
        "/status/jobs/retry-all",
        view_func=retry_all,
        methods=["POST"],
        endpoint="status_retry_all",
    )
