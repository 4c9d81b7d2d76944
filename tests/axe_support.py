"""axe-core in headless Chromium: inject the vendored build (tests/assets/axe.min.js) and list violations."""

from __future__ import annotations

from pathlib import Path

AXE = Path(__file__).resolve().parent / "assets" / "axe.min.js"
# WCAG 2.0/2.1 A and AA, plus the 24x24 px target size (off by default in axe 4.x).
RUN_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
    "rules": {"target-size": {"enabled": True}},
}
BLOCKING = ("critical", "serious")


def axe_violations(target, impacts=BLOCKING) -> list[dict]:
    """Run axe on a Playwright page or frame; answer the violations of the given impacts."""
    if not target.evaluate("typeof window.axe !== 'undefined'"):
        target.evaluate(AXE.read_text())
    found = target.evaluate(
        """async (options) => {
            const result = await axe.run(document, options);
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 6).map(n => n.target.join(' ') + ' :: ' + (n.failureSummary || '').split('\\n').slice(0, 3).join(' '))}));
        }""",
        RUN_OPTIONS,
    )
    return [v for v in found if v["impact"] in impacts]


def assert_accessible(target, where: str) -> None:
    bad = axe_violations(target)
    assert not bad, f"{where}: " + "\n".join(f"{v['impact']} {v['id']} ({v['help']}): {v['nodes']}" for v in bad)
