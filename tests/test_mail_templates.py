"""Mail templates: every message renders, HTML is escaped, operators override file by file."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from scimbridge.adapters.mail import MailMessage
from scimbridge.adapters.mail.file import FileTransport
from scimbridge.service.mail.queue import EMAIL_JOB
from scimbridge.service.mail.queue import TEMPLATES
from scimbridge.service.mail.rendering import SHIPPED_TEMPLATES
from scimbridge.service.mail.rendering import MailRenderer
from scimbridge.service.mail.rendering import MailTemplateError
from scimbridge.service.outbox.worker import OutboxWorker
from scimbridge.settings import MailSettings
from scimbridge.store.database import Database
from scimbridge.worker import email_delivery

from .conftest import make_settings
from .outbox_support import Clock
from .outbox_support import job
from .outbox_support import queue_job

LIFECYCLE_CONTEXT = {
    "name": "Ada Lovelace",
    "link": "https://id.acme.test/invitation/t0ken",
    "expires": "2030-01-08T12:00+00:00",
    "invited_by": "Grace Hopper",
    "new_email": "ada@new.example.com",
}


def renderer(template_dir: Path = Path("/nonexistent")) -> MailRenderer:
    return MailRenderer(
        template_dir,
        product_name="Acme Portal",
        sender="Acme <no-reply@acme.test>",
        public_url="https://id.acme.test/",
    )


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_message_renders_a_subject_text_and_html(template: str) -> None:
    for suffix in ("subject", "txt", "html"):
        assert (SHIPPED_TEMPLATES / f"{template}.{suffix}").is_file()
    mail = renderer().render(template, "ada@example.com", LIFECYCLE_CONTEXT)
    assert "Acme Portal" in mail.subject and "\n" not in mail.subject
    assert "Hello Ada Lovelace," in mail.text
    assert mail.html.startswith("<!DOCTYPE html>")
    assert "https://id.acme.test" in mail.text and "https://id.acme.test" in mail.html


def test_links_are_shown_in_full_in_both_parts() -> None:
    mail = renderer().render("password_reset", "ada@example.com", LIFECYCLE_CONTEXT)
    assert "https://id.acme.test/invitation/t0ken" in mail.text
    assert 'href="https://id.acme.test/invitation/t0ken"' in mail.html
    assert "expires on 8 January 2030, 12:00 UTC" in mail.text


def test_html_is_escaped_and_text_is_not() -> None:
    context = {**LIFECYCLE_CONTEXT, "name": "<b>Ada</b> & co"}
    mail = renderer().render("password_changed", "ada@example.com", context)
    assert "Hello <b>Ada</b> & co," in mail.text
    assert "&lt;b&gt;Ada&lt;/b&gt; &amp; co" in mail.html
    assert "<b>Ada</b>" not in mail.html


def test_optional_values_may_be_missing_or_empty() -> None:
    mail = renderer().render("invitation", "ada@example.com", {"name": None, "link": "https://x/"})
    assert mail.text.startswith("Hello,\n")
    assert "You are invited to join Acme Portal" in mail.text
    assert "This link works once." in mail.text


def test_a_missing_required_value_fails_rather_than_rendering_a_blank() -> None:
    with pytest.raises(MailTemplateError, match="'link' is undefined"):
        renderer().render("invitation", "ada@example.com", {"name": "Ada"})


def test_an_operator_template_overrides_the_shipped_one_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "invitation.subject").write_text("Welcome aboard {{ name }}\n")
    (tmp_path / "invitation.html").write_text("<p>{{ name }} — {{ link }}</p>")
    mail = renderer(tmp_path).render("invitation", "ada@example.com", LIFECYCLE_CONTEXT)
    assert mail.subject == "Welcome aboard Ada Lovelace"
    assert mail.html == "<p>Ada Lovelace — https://id.acme.test/invitation/t0ken</p>"
    assert "Grace Hopper invited you" in mail.text, "the text part is still the shipped one"


def test_a_subject_cannot_inject_headers(tmp_path: Path) -> None:
    (tmp_path / "account_suspended.subject").write_text("Hi {{ name }}")
    context = {"name": "Ada\r\nBcc: victim@example.com"}
    mail = renderer(tmp_path).render("account_suspended", "ada@example.com", context)
    assert mail.subject == "Hi Ada Bcc: victim@example.com"


def test_a_job_whose_template_cannot_render_is_parked_with_the_reason(
    database: Database, tmp_path: Path
) -> None:
    settings = make_settings(
        str(database.url), mail=MailSettings(transport="file", file_dir=tmp_path / "mail")
    )
    clock = Clock()
    payload = {"template": "invitation", "to": "ada@example.com", "context": {}, "secret_keys": []}
    pk = queue_job(database, EMAIL_JOB, "user:1", payload, clock.now)
    OutboxWorker(database, {EMAIL_JOB: email_delivery(settings)}, clock=clock).run_once()
    info = job(database, pk)
    assert info.status == "failed"
    assert info.last_error == "mail template 'invitation': 'link' is undefined"
    assert not (tmp_path / "mail").exists()


def test_the_file_transport_writes_one_eml_per_message(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path / "mail")
    for n in range(2):
        transport.send(
            MailMessage(
                sender="Acme <no-reply@acme.test>",
                recipient=f"user{n}@example.com",
                subject=f"Hello {n}",
                text="plain",
                html="<p>html</p>",
                message_id=f"<m{n}@acme.test>",
            )
        )
    files = sorted((tmp_path / "mail").iterdir())
    assert [path.suffix for path in files] == [".eml", ".eml"]
    messages = [BytesParser(policy=policy.default).parsebytes(f.read_bytes()) for f in files]
    assert sorted(m["To"] for m in messages) == ["user0@example.com", "user1@example.com"]
    message = messages[0]
    assert message.get_body(("plain",)).get_content() == "plain\n"  # type: ignore[union-attr]
    assert message.get_body(("html",)).get_content() == "<p>html</p>\n"  # type: ignore[union-attr]
