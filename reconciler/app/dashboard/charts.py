"""Trend charts as standalone SVG files, drawn by pygal.

pygal over matplotlib: it is pure Python and writes SVG directly (1.9 MB installed against
174 MB for matplotlib with numpy and pillow, measured). The SVGs are shown with `<img>`, so no
script in them runs and nothing they reference is fetched; chart text (commit labels) is escaped
by pygal's XML writer. Output must be byte-stable for unchanged data, because an unchanged
dashboard must rewrite nothing: pygal's random chart id is fixed and its dated comment dropped.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pygal
from pygal.style import Style

from reconciler.app.dashboard.view import StatusCounts

# Importing pygal appends a `sys.meta_path` finder (for pygal.maps plugins, which we do not use)
# that has only the legacy `find_module`. Python 3.11 then raises an ImportWarning from every
# later import that misses, i.e. each optional `try: import x`, anywhere in the process (3.12
# ignores such finders). Take it out again.
sys.meta_path[:] = [
    finder for finder in sys.meta_path if not isinstance(finder, pygal.PluginImportFixer)
]

# pass, fail (fail + timeout), error: the colours the pages use for the same statuses.
_STYLE = Style(
    background="white",
    plot_background="white",
    colors=("#2e7d32", "#c62828", "#ef6c00"),
    font_family="sans-serif",
)
_DATED_COMMENT = re.compile(r"<!--Generated with pygal[^>]*-->")


@dataclass(frozen=True)
class TrendPoint:
    label: str
    counts: StatusCounts


def trend_svg(points: Sequence[TrendPoint], *, chart_id: str, title: str) -> bytes:
    """Pass/fail/error counts across `points`, oldest first, as an SVG document."""
    chart = pygal.Line(
        style=_STYLE,
        title=title,
        width=900,
        height=320,
        js=[],  # pygal's tooltips script lives on a CDN: nothing is fetched from a page of ours
        x_label_rotation=20,
        truncate_label=24,
        show_minor_x_labels=True,
        include_x_axis=True,
        allow_interruptions=True,
        legend_at_bottom=True,
        print_values=False,
        no_data_text="no results yet",
    )
    chart.uuid = re.sub(r"[^A-Za-z0-9_-]", "-", chart_id)
    chart.x_labels = [point.label for point in points]
    tested = [point.counts.state != "untested" for point in points]
    # An untested commit is a gap in the line, not a zero that would read as "all gone".
    chart.add("pass", _series(points, tested, lambda c: c.counts["pass"]))
    chart.add("fail", _series(points, tested, lambda c: c.failing))
    chart.add("error", _series(points, tested, lambda c: c.counts["error"]))
    svg: str = chart.render(is_unicode=True)
    return _DATED_COMMENT.sub("", svg).encode()


def _series(
    points: Sequence[TrendPoint], tested: Sequence[bool], value: Callable[[StatusCounts], int]
) -> list[int | None]:
    return [value(p.counts) if ok else None for p, ok in zip(points, tested, strict=True)]
