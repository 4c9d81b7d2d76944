"""PDF documents (subject exports, auditor reports): Jinja templates rendered by WeasyPrint.

Plain HTML with a small print stylesheet; no fonts or images are fetched (the document
is self-contained, so WeasyPrint never touches the network).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    env.filters["pretty"] = lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True) if not isinstance(v, str) else v
    return env


def render_html(template: str, **context) -> str:
    return _env().get_template(template).render(**context)


def render_pdf(template: str, **context) -> bytes:
    from weasyprint import HTML

    html = render_html(template, **context)
    return HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
