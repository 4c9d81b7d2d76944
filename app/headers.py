"""Values that end up in mail headers: no line breaks, ever (header injection)."""

from __future__ import annotations

import re

from wtforms.validators import ValidationError

_BREAKS = re.compile(r"[\r\n\x00\x0b\x0c\x85\u2028\u2029]")
_EMAIL = re.compile(r"^[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+\.[^@\s<>,;:\"()\[\]\\]+$")


def has_break(value: str | None) -> bool:
    return bool(value) and bool(_BREAKS.search(value))


def header_text(value: str | None) -> str:
    """A display name for a header: line breaks (and control characters) become spaces."""
    return " ".join(_BREAKS.sub(" ", value or "").split())


def header_address(value: str | None) -> str | None:
    """A single plain address, or None when the value is not one (never passes line breaks on)."""
    value = (value or "").strip()
    if not value or has_break(value) or not _EMAIL.match(value):
        return None
    return value


def no_line_breaks(form, field) -> None:
    """WTForms validator for sender names and the like."""
    if has_break(field.data):
        raise ValidationError("may not contain line breaks")


def single_address(form, field) -> None:
    """WTForms validator: empty, or one plain e-mail address."""
    if field.data and header_address(field.data) is None:
        raise ValidationError("must be one e-mail address (no name, no line breaks)")
