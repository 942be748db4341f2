"""Reading submitted form fields, and collecting the messages shown next to them."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from flask import request

# Long enough for any real password or address; far below what would make hashing slow.
MAX_FIELD_LENGTH = 1024


@dataclass
class FormErrors:
    """Messages for the person filling a form: per field, and for the form as a whole."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    form: list[str] = field(default_factory=list)

    def add(self, name: str | None, message: str) -> None:
        """Attach a message to a field (None: to the whole form)."""
        if name is None:
            self.form.append(message)
        else:
            self.fields.setdefault(name, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.fields or self.form)


def read_fields(errors: FormErrors, *names: str, strip: tuple[str, ...] = ()) -> dict[str, str]:
    """Return the submitted fields; refuse values too long or holding control characters.

    Names listed in ``strip`` lose surrounding spaces (addresses); passwords are taken as typed.
    """
    values = {}
    for name in names:
        value = request.form.get(name, "")
        if name in strip:
            value = value.strip()
        if len(value) > MAX_FIELD_LENGTH:
            errors.add(name, f"use at most {MAX_FIELD_LENGTH} characters")
            value = ""
        elif any(ord(c) < 32 or ord(c) == 127 for c in value):
            errors.add(name, "remove the control characters from this field")
            value = ""
        values[name] = value
    return values


def require(errors: FormErrors, values: dict[str, str], name: str, message: str) -> None:
    """Refuse an empty field (unless it already has an error)."""
    if not values.get(name) and name not in errors.fields:
        errors.add(name, message)
