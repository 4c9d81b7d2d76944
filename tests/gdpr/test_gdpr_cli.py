"""Operators' command line: gdpr find/export/erase, audit report (PDF with every section, CSV), tenants archive;
each run leaves an audit row naming the command."""

from __future__ import annotations

import json
import subprocess
import zipfile

from gdpr_support import book


def _run(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result


def test_find_export_erase_from_the_command_line(app, client, gdpr_tenant, sql, tmp_path):
    slug = gdpr_tenant
    book(client, slug, name="Cora Lindqvist", email="cora.l@example.com", phone="+49 30 5551234")
    found = _run(app, "gdpr", "find", slug, "+49305551234")
    assert found.exit_code == 0 and "customer" in found.output and "cora.l@example.com" in found.output
    assert _run(app, "gdpr", "find", slug, "CORA.L@example.com").output.count("customer") == 1
    out = tmp_path / "cora.json"
    done = _run(app, "gdpr", "export", slug, "cora.l@example.com", "--format", "json", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert json.loads(out.read_text())["customer"]["name"] == "Cora Lindqvist"
    pdf = tmp_path / "cora.pdf"
    assert _run(app, "gdpr", "export", slug, "cora.l@example.com", "--format", "pdf", "--out", str(pdf)).exit_code == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    refused = _run(app, "gdpr", "erase", slug, "cora.l@example.com")
    assert refused.exit_code != 0 and "error: " in refused.output
    erased = _run(app, "gdpr", "erase", slug, "cora.l@example.com", "--confirm")
    assert erased.exit_code == 0, erased.output
    assert _run(app, "gdpr", "find", slug, "cora.l@example.com").output.count("customer") == 0
    unknown = _run(app, "gdpr", "export", slug, "nobody@example.com", "--out", str(tmp_path / "x.json"))
    assert unknown.exit_code != 0 and not (tmp_path / "x.json").exists()
    runs = sql(slug, "SELECT actor_kind, actor_label, action FROM audit_log WHERE entity = 'subject' ORDER BY id")
    assert [r.action for r in runs] == ["find", "find", "export", "export", "erase", "find"]
    assert {r.actor_kind for r in runs} == {"cli"} and runs[0].actor_label == "gdpr find"
    kinds = sql(slug, "SELECT kind, channel, status FROM erasure_request ORDER BY id")
    assert [tuple(k) for k in kinds] == [("export", "cli", "done"), ("export", "cli", "done"), ("erasure", "cli", "done")]


def test_audit_report_pdf_and_csv(app, client, gdpr_tenant, sql, tmp_path):
    from app.gdpr import reports

    slug = gdpr_tenant
    book(client, slug)
    pdf = tmp_path / "report.pdf"
    result = _run(app, "audit", "report", slug, "--from", "2020-01-01", "--to", "2030-12-31", "--format", "pdf",
                  "--out", str(pdf))
    assert result.exit_code == 0, result.output
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    for section in reports.SECTIONS:
        assert section in text, section
    assert f"tenant_{slug}" in text and "audit_log_no_change" in text
    csv_path = tmp_path / "report.csv"
    assert _run(app, "audit", "report", slug, "--from", "2020-01-01", "--to", "2030-12-31", "--format", "csv",
                "--out", str(csv_path)).exit_code == 0
    body = csv_path.read_text()
    assert body.startswith("section,item,field,value") and "Data isolation,schema,schema," in body
    bad = _run(app, "audit", "report", slug, "--from", "2021-13-01", "--to", "2022-01-01", "--out", str(tmp_path / "b"))
    assert bad.exit_code != 0 and not (tmp_path / "b").exists()
    assert sql(slug, "SELECT count(*) FROM audit_log WHERE entity = 'report' AND actor_kind = 'cli'")[0][0] == 2


def test_tenants_archive_then_drop(app, client, gdpr_tenant, tmp_path):
    from sqlalchemy import text

    from app.extensions import db

    slug = gdpr_tenant
    book(client, slug, email="arch@example.com")
    out = tmp_path / "archive.zip"
    refused = _run(app, "tenants", "archive", slug, "--out", str(out), "--drop")
    assert refused.exit_code != 0 and not out.exists()
    result = _run(app, "tenants", "archive", slug, "--out", str(out), "--drop", "--confirm")
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["tables"]["appointment"] == 1 and "setup.json" in zf.namelist()
        [row] = [json.loads(line) for line in zf.read("data/customer.jsonl").splitlines()]
        assert row["email"] == "arch@example.com"
        assert json.loads(zf.read("setup.json"))["services"][0]["key"] == "visit"
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": f"tenant_{slug}"}).scalar() == 0
        logged = conn.execute(text("SELECT action FROM platform_audit_log WHERE tenant_slug = :s OR"
                                   " (entity = 'tenant' AND changes::text LIKE :like) ORDER BY id"),
                              {"s": slug, "like": f"%{slug}%"}).scalars().all()
    assert "archive" in logged and "delete" in logged
