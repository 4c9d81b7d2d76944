"""Extract, update, compile and check the gettext catalogues in ``translations/``.

``python -m app.i18n extract|update|compile|check`` (no database needed). The same steps
with pybabel are in the README. ``check`` is what CI runs (tests/i18n): the widget's, the
portal's and the messages' texts must be translated in every language, no entry may be
fuzzy, and a translation must keep its msgid's placeholders (``%(name)s``, ``{n}``, and
the ``{{ ... }}`` / ``{% ... %}`` code of message templates).
"""

from __future__ import annotations

import ast
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_python
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from app.i18n import DEFAULT_LANGUAGE, DOMAIN, LANGUAGES, SOURCE_DIR, compile_catalogues

ROOT = SOURCE_DIR.parent
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None, "NC_": ((1, "c"), 2)}
PROJECT = "Upzento Appointments"
# Customer-facing texts: every message found under these paths must be translated everywhere.
STRICT_PATHS = ("app/widget/", "app/portal/", "app/notifications/")
# The admin may lag behind a little while new screens are written; not below this share.
ADMIN_COVERAGE_MIN = 0.95

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_PRINTF = re.compile(r"%(?:\(\w+\))?[-+ #0]*\d*(?:\.\d+)?[sdifr%]")
_BRACE = re.compile(r"\{\w*\}")


def extract_python_and_menus(fileobj, keywords, comment_tags, options):
    """Python's messages plus the menu name and category of every entry of a module's ``VIEWS``."""
    source = fileobj.read()
    yield from extract_python(io.BytesIO(source), keywords, comment_tags, options)
    tree = ast.parse(source)
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if not any(isinstance(t, ast.Name) and t.id == "VIEWS" for t in targets):
            continue
        if not isinstance(node.value, (ast.List, ast.Tuple)):
            continue
        for entry in node.value.elts:
            if isinstance(entry, ast.Tuple):
                for item in entry.elts[1:3]:
                    if isinstance(item, ast.Constant) and isinstance(item.value, str):
                        yield item.lineno, None, item.value, ["TRANSLATORS: admin menu"]


def extract(root: Path = ROOT) -> Catalog:
    """A fresh template catalogue from the sources under ``root`` (as ``pybabel extract -F babel.cfg`` makes it)."""
    with (root / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    catalog = Catalog(project=PROJECT, domain=DOMAIN, fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(root), method_map, options_map, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",),
        strip_comment_tags=True,
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def _po_path(lang: str, directory: Path = SOURCE_DIR) -> Path:
    return directory / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(lang: str, directory: Path = SOURCE_DIR) -> Catalog:
    with _po_path(lang, directory).open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


def write_catalogue(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    # Sorted, without line numbers: a moved line does not rewrite every catalogue.
    write_po(buffer, catalog, width=100, sort_output=True, include_lineno=False)
    path.write_bytes(buffer.getvalue())


def update(root: Path = ROOT, directory: Path = SOURCE_DIR) -> Catalog:
    """Write ``messages.pot`` from the sources and merge it into every language's ``.po``."""
    template = extract(root)
    write_catalogue(template, directory / f"{DOMAIN}.pot")
    for lang in LANGUAGES:
        if lang == DEFAULT_LANGUAGE:
            continue
        path = _po_path(lang, directory)
        if path.exists():
            catalog = read_catalogue(lang, directory)
        else:
            catalog = Catalog(locale=lang, domain=DOMAIN, project=PROJECT)
        # No fuzzy guesses: a near match would be a wrong text in a customer's inbox.
        catalog.update(template, no_fuzzy_matching=True)
        write_catalogue(catalog, path)
    return template


def placeholders(text: str) -> Counter:
    """The placeholders of a message: printf (``%(n)s``), braces (``{n}``) and template code (``{{ x }}``)."""
    code = [re.sub(r"\s+", "", m) for m in _JINJA.findall(text)]
    rest = _JINJA.sub(" ", text)
    printf = [p for p in _PRINTF.findall(rest) if p != "%%"]
    return Counter(code + printf + _BRACE.findall(rest))


def _strict(message) -> bool:
    return any(str(path).replace("\\", "/").startswith(STRICT_PATHS) for path, _line in message.locations)


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    admin_total: int = 0
    admin_translated: dict[str, int] = field(default_factory=dict)

    def coverage(self, lang: str) -> float:
        return self.admin_translated.get(lang, 0) / self.admin_total if self.admin_total else 1.0


def check(template: Catalog | None = None, directory: Path = SOURCE_DIR) -> Report:
    """Every problem of the catalogues against the sources (``template``: a fresh extraction by default)."""
    template = template if template is not None else extract()
    report = Report()
    messages = [m for m in template if m.id]
    report.admin_total = sum(1 for m in messages if not _strict(m))
    for lang in LANGUAGES:
        if lang == DEFAULT_LANGUAGE:
            continue
        path = _po_path(lang, directory)
        if not path.exists():
            report.problems.append(f"{lang}: {path.relative_to(directory.parent)} is missing")
            continue
        catalog = read_catalogue(lang, directory)
        for entry in catalog:
            if entry.id and entry.fuzzy:
                report.problems.append(f"{lang}: fuzzy entry {entry.id!r}")
        translated = 0
        for message in messages:
            strict = _strict(message)
            where = f"{message.locations[0][0]}" if message.locations else "?"
            entry = catalog.get(message.id, message.context)
            if entry is None or not entry.string:
                if strict:
                    state = "missing from the catalogue" if entry is None else "not translated"
                    report.problems.append(f"{lang}: {message.id!r} ({where}) is {state}")
                continue
            if not strict:
                translated += 1
            if placeholders(message.id) != placeholders(entry.string):
                report.problems.append(
                    f"{lang}: {message.id!r} ({where}): placeholders differ in {entry.string!r}")
        report.admin_translated[lang] = translated
    return report


def main(argv: list[str] | None = None) -> int:
    import sys

    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "help"
    if command == "extract":
        template = extract()
        write_catalogue(template, SOURCE_DIR / f"{DOMAIN}.pot")
        print(f"{len(template)} messages in {SOURCE_DIR / (DOMAIN + '.pot')}")
    elif command == "update":
        template = update()
        print(f"{len(template)} messages; updated " + ", ".join(l for l in LANGUAGES if l != DEFAULT_LANGUAGE))
    elif command == "compile":
        done = compile_catalogues(force="--force" in args)
        print("compiled: " + (", ".join(done) or "nothing (up to date)"))
    elif command == "check":
        report = check()
        for problem in report.problems:
            print(problem)
        for lang in LANGUAGES:
            if lang != DEFAULT_LANGUAGE:
                print(f"{lang}: admin {report.coverage(lang):.0%} translated "
                      f"({report.admin_translated.get(lang, 0)} of {report.admin_total})")
        low = [l for l in report.admin_translated if report.coverage(l) < ADMIN_COVERAGE_MIN]
        if report.problems or low:
            print(f"error: {len(report.problems)} problem(s)" + (f"; admin below {ADMIN_COVERAGE_MIN:.0%}: "
                                                                 f"{', '.join(low)}" if low else ""), file=sys.stderr)
            return 1
    else:
        print("usage: python -m app.i18n extract|update|compile [--force]|check", file=sys.stderr)
        return 2
    return 0
