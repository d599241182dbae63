"""The monthly compliance report as an A4 PDF (reportlab platypus): title block, weekly chart, releases,
call-outs and each run's detail."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import CondPageBreak, KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from delivery.audit_report import MonthReport, ReleaseRun

MARGIN = 18 * mm
WIDTH = A4[0] - 2 * MARGIN - 12  # the frame pads 6 pt on each side
INK, HEADER, ZEBRA, RULE = colors.HexColor("#1f2933"), colors.HexColor("#274c77"), colors.HexColor("#eef2f7"), colors.HexColor("#9aa5b1")
RELEASE_BLUE, ROLLBACK_RED, ALARM = colors.HexColor("#3a7bd5"), colors.HexColor("#d64545"), colors.HexColor("#b42318")
DIGEST = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{28,52}\b")  # sha256 digests and git commits inside text, shortened
Cell = str | list[str]


@cache
def _font() -> str:
    """Bitstream Vera (shipped with reportlab): unlike the PDF base fonts it has ≥, ≤ and the dashes the log's reasons use."""
    for name, file in (("Vera", "Vera.ttf"), ("Vera-Bold", "VeraBd.ttf"), ("Vera-Italic", "VeraIt.ttf"), ("Vera-BoldItalic", "VeraBI.ttf")):
        pdfmetrics.registerFont(TTFont(name, file))
    pdfmetrics.registerFontFamily("Vera", normal="Vera", bold="Vera-Bold", italic="Vera-Italic", boldItalic="Vera-BoldItalic")
    return "Vera"


def _style(name: str, size: float, bold: bool = False, color: colors.Color = INK, font: str = "", **extra: object) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=font or _font() + ("-Bold" if bold else ""), fontSize=size, leading=size * 1.3, textColor=color,
                          embeddedHyphenation=1, **extra)  # names like demo-release-manager break after a hyphen


def write_pdf(report: MonthReport, out: str | Path | BinaryIO, generated: datetime) -> None:
    """Render `report` to `out` (a path or a binary stream), stamped as generated at `generated`."""
    title = f"TripGen release compliance report {report.month}"
    doc = SimpleDocTemplate(out if hasattr(out, "write") else str(out), pagesize=A4,
                            leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN, bottomMargin=MARGIN + 4 * mm,
                            title=title, author="tripgen-release audit report")
    head = report.head.sha256 if report.head else "(empty log)"

    def footer(canvas, page_doc) -> None:
        canvas.saveState()
        canvas.setFont(_font(), 7)
        canvas.setFillColor(RULE)
        canvas.drawString(MARGIN, MARGIN - 2 * mm, f"{title} · page {page_doc.page}")
        canvas.drawRightString(A4[0] - MARGIN, MARGIN - 2 * mm, f"chain head {head[:16]}…")
        canvas.restoreState()

    story = [*_title_block(report, generated, title), _chart(report), *_releases(report), *_call_outs(report)]
    if report.runs:
        story += [PageBreak(), _heading("Release details", space=0)]
    for run in report.runs:
        story += _run_detail(run)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)


def _title_block(report: MonthReport, generated: datetime, title: str) -> list:
    v, head = report.verification, report.head
    verified = (f"yes: all {v.records} records intact" if v.intact
                else f"NO: line {v.broken_line}: {v.problem} ({v.records} records before it intact)")
    last = report.events[-1] if report.events else None
    text, mono = _style("value", 8.5), _style("mono", 8, font="Courier")
    facts = [
        ("Month", _cell(f"{report.month}: {report.month.start:%d %b %Y} 00:00 to {report.month.end:%d %b %Y} 00:00 UTC", text)),
        ("Generated at", _cell(f"{generated:%Y-%m-%d %H:%M:%S} UTC", text)),
        ("Audit log", _cell(str(report.log), text)),
        ("Chain verified", _cell(verified, text if v.intact else _style("alarm", 8.5, bold=True, color=ALARM))),
        ("Chain head", _cell(f"record {head.seq} of {head.time:%Y-%m-%d %H:%M} UTC" if head else "the log is empty", text)),
        ("Head sha256", Paragraph(head.sha256 if head else "-", mono)),
        ("Month's events", _cell(f"{len(report.events)}, the last is record {last.seq}" if last else "none", text)),
        *([("Month's last sha256", Paragraph(last.sha256, mono))] if last else []),
        ("Runs", _cell(f"{len(report.releases)} release(s), {len(report.runs) - len(report.releases)} manual rollback(s), "
                       f"{sum(1 for r in report.runs if r.rollbacks)} rolled back, {len(report.notices)} call-out(s)", text)),
    ]
    block = _facts(facts, 42 * mm)
    block.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.8, HEADER)]))
    return [Paragraph(title, _style("title", 17, bold=True, color=HEADER, spaceAfter=2 * mm)),
            Paragraph("Every production release and rollback of the month from the hash-chained audit log (R-AUDIT).",
                      _style("subtitle", 9.5, spaceAfter=4 * mm)),
            block, Spacer(1, 6 * mm)]


def _chart(report: MonthReport) -> Drawing:
    """Releases started and runs rolled back per ISO week, side by side."""
    font, weeks = _font(), report.weeks
    drawing = Drawing(WIDTH, 62 * mm)
    drawing.add(String(0, 62 * mm - 12, "Releases and rollbacks per ISO week", fontName=font + "-Bold", fontSize=11, fillColor=INK))
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 12 * mm, 10 * mm, WIDTH - 52 * mm, 42 * mm
    chart.data = [[w.releases for w in weeks], [w.rollbacks for w in weeks]]
    chart.categoryAxis.categoryNames = [w.week for w in weeks]
    chart.categoryAxis.labels.fontName = chart.valueAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = chart.valueAxis.labels.fontSize = 7.5
    chart.valueAxis.valueMin, chart.valueAxis.valueStep = 0, 1
    chart.valueAxis.valueMax = max([1, *chart.data[0], *chart.data[1]])
    chart.valueAxis.gridStrokeColor, chart.valueAxis.visibleGrid = ZEBRA, True
    chart.bars[0].fillColor, chart.bars[1].fillColor = RELEASE_BLUE, ROLLBACK_RED
    chart.bars.strokeColor = None
    chart.barLabelFormat = lambda value: f"{value:.0f}" if value else ""
    chart.barLabels.fontName, chart.barLabels.fontSize, chart.barLabels.nudge = font, 7, 6
    legend = Legend()
    legend.x, legend.y, legend.fontName, legend.fontSize, legend.alignment = WIDTH - 34 * mm, 48 * mm, font, 8, "right"
    legend.colorNamePairs = [(RELEASE_BLUE, "releases"), (ROLLBACK_RED, "rolled back")]
    drawing.add(chart)
    drawing.add(legend)
    return drawing


def _releases(report: MonthReport) -> list:
    rows = [["Release", "Run", "Kind", "Initiator", "Approvers", "Outcome", "Started (UTC)", "Duration"]]
    rows += [[run.release, run.run[:8], run.kind, run.initiator, run.approvers or "-", run.outcome,
              f"{run.started:%m-%d %H:%M}", _duration(run.seconds)] for run in report.runs]
    widths = [w * mm for w in (23, 18, 15, 26, 24, 24, 18)]
    body = _table(rows, widths) if report.runs else Paragraph("No release or rollback ran this month.", _style("body", 9))
    return [_heading("Releases"), body]


def _call_outs(report: MonthReport) -> list:
    rows = [["Time (UTC)", "Release", "Kind", "By", "What"]]
    rows += [[f"{n.time:%m-%d %H:%M}", n.release, n.kind, n.actor, n.text or "-"] for n in report.notices]
    body = (_table(rows, [w * mm for w in (20, 23, 32, 26)]) if report.notices
            else Paragraph("No emergency override, hotfix auto-approval or manual promotion this month.", _style("body", 9)))
    return [_heading("Overrides and hotfix auto-approvals"), body]


def _run_detail(run: ReleaseRun) -> list:
    reasons = sorted({r.reason for r in run.rollbacks if r.reason})
    facts: list[tuple[str, Cell]] = [
        ("Flow run", run.run),
        ("Initiator", f"{run.initiator} at {run.started:%Y-%m-%d %H:%M:%S}"),
        ("Approvals", [f"{a.approver} {a.decision} at {a.time:%Y-%m-%d %H:%M:%S}" + (" (EMERGENCY OVERRIDE)" if a.override else "")
                       + (f": {a.note}" if a.note else "") for a in run.approvals] or "none recorded"),
        ("Failed gates", run.failed_gates or "none"),
        ("Switches", [f"{s.service}: {s.from_color} -> {s.to_color} at {s.time:%H:%M:%S}" + (f" in {s.seconds:.1f} s" if s.seconds is not None else "")
                      for s in run.switches] or "none"),
        ("Rollbacks", [f"{r.service}: {r.action or 'restored'} at {r.time:%H:%M:%S}" + ("" if r.restored else " (FAILED)")
                       for r in run.rollbacks] or "none"),
        *([("Rollback reason", reasons)] if reasons else []),
        ("Outcome", f"{run.outcome}: {run.detail}" if run.detail else run.outcome),
        ("Duration", _duration(run.seconds)),
        ("Events", [f"{e.seq} · {e.time:%H:%M:%S} · {e.event} by {e.actor}" + _brief(e.details) for e in run.events]),
    ]
    table = _facts([(label, _cell(value, _style("cell", 8))) for label, value in facts], 32 * mm)
    return [CondPageBreak(45 * mm), KeepTogether([_heading(f"{run.release} · {run.kind} · {run.outcome}", 11), table])]


def _brief(details: dict) -> str:
    """The few detail fields that identify an event; reasons are in the rows above."""
    shown = [str(details[k]) for k in ("service", "phase", "version", "gate") if details.get(k)]
    return f": {', '.join(shown)}" if shown else ""


def _facts(pairs: list[tuple[str, Paragraph]], label_width: float) -> Table:
    """Label and value rows, the labels bold on a tinted column."""
    table = Table([[_cell(label, _style("label", 8, bold=True)), value] for label, value in pairs], colWidths=[label_width, WIDTH - label_width])
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
                               ("BACKGROUND", (0, 0), (0, -1), ZEBRA)]))
    return table


def _table(rows: list[list[Cell]], widths: list[float]) -> Table:
    """Wrapped cells under a styled header row that repeats on every page, rows striped; the last column takes the rest."""
    head, *body = rows
    data = [[_cell(c, _style("head", 8, bold=True, color=colors.white)) for c in head],
            *[[_cell(c, _style("cell", 8)) for c in row] for row in body]]
    table = Table(data, colWidths=[*widths, WIDTH - sum(widths)], repeatRows=1)
    table.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, 0), HEADER), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, ZEBRA]),
                               ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE), ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                               ("LEFTPADDING", (0, 0), (-1, -1), 4), ("RIGHTPADDING", (0, 0), (-1, -1), 4)]))
    return table


def _cell(value: Cell, style: ParagraphStyle) -> Paragraph:
    """A paragraph of one line or several; text is escaped, digests shortened, glyphs Vera lacks shown as '?'."""
    lines = [value] if isinstance(value, str) else value
    return Paragraph("<br/>".join(_safe(line) for line in lines), style)


def _safe(text: str) -> str:
    glyphs = pdfmetrics.getFont(_font()).face.charToGlyph
    printable = "".join(c if ord(c) in glyphs else "?" for c in DIGEST.sub(r"\1…", text))
    return escape(printable)


def _heading(text: str, size: float = 13, space: float = 5 * mm) -> Paragraph:
    return Paragraph(_safe(text), _style("heading", size, bold=True, color=HEADER, spaceBefore=space, spaceAfter=2 * mm))


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {rest} s" if minutes else f"{rest} s"
