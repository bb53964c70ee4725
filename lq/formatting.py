"""How lq shows a number and a table, everywhere: dashboard tabs, notebooks and the CLI.

Pure formatting (no I/O, no widgets): a value and a *kind* in, display text out; a frame and
its columns' kinds in, a styled table out.

One approach for the whole product: **pandas** ``Styler``. It is already installed (pandas
and jinja2), renders to self-contained HTML that an ipywidgets ``HTML`` shows as it is,
displays itself in a notebook, keeps the raw numbers in ``.data``, and takes per-cell CSS and
tooltips (the greyed short-sample figures). great-tables draws handsome static tables but
is a new dependency with its own styling model and no per-cell tooltip; itables is an
interactive DataTables grid whose JavaScript must be served to the page (the dashboard is
offline) and is made for browsing large frames, not for a metrics sheet.

Rules every table follows (:func:`table`):

* numbers are right-aligned, their header too; text is left-aligned;
* units are in the header (``half-life (s)``, ``return (%)``), not in every cell;
* each kind has one precision (:data:`KINDS`): a p-value 3 decimals, a ratio 3 significant
  digits, a percentage 2 decimals, a count with thousands separators; never a raw float;
* a greyed cell (:data:`GREY_CSS`) is a figure from too short a sample to mean anything
  (the reason is in its tooltip and in a note); a red one (:data:`BAD_CSS`) is a ruin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

__all__ = [
    "BAD_CSS",
    "GREY_CSS",
    "KINDS",
    "TABLE_CLASS",
    "fmt",
    "fmt_duration",
    "header",
    "table",
    "text_table",
]

#: CSS of a figure from a short sample: readable, visibly second-class, on light or dark pages.
GREY_CSS = "opacity: 0.45; font-style: italic;"
#: CSS of a ruined run's figures.
BAD_CSS = "color: #ef5350; font-weight: bold;"
#: The class every lq table carries (tests and the page's CSS find them by it).
TABLE_CLASS = "lq-table"

_DASH = "–"


def _finite(v: Any) -> float | None:
    """``v`` as a float, or None when it is missing (None, NaN, "")."""
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, str):
        try:
            v = float(v)  # "inf" / "-inf" as stored by canonical_json
        except ValueError:
            return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def fmt_duration(seconds: float) -> str:
    """``90`` -> ``"1 min 30 s"``, ``0.25`` -> ``"0.25 s"``, ``93784`` -> ``"1 d 2 h 3 min"``."""
    s = float(seconds)
    if not math.isfinite(s):
        return _DASH
    if abs(s) < 60:
        return f"{s:.3g} s" if abs(s) < 10 else f"{s:.0f} s"
    parts = []
    rest = round(abs(s))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        q, rest = divmod(rest, size)
        if q:
            parts.append(f"{q} {unit}")
    return ("-" if s < 0 else "") + " ".join(parts[:3])


def _sig(x: float, digits: int = 3) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e6 or abs(x) < 1e-4:
        return f"{x:.{digits - 1}e}"
    # enough decimals for `digits` significant digits, no more than 6
    dec = max(0, min(6, digits - 1 - math.floor(math.log10(abs(x)))))
    return f"{x:,.{dec}f}"


def _pct(x: float, dec: int) -> str:
    """A fraction as a percentage; past a million percent (an annualised figure from minutes
    of data) in scientific notation, not a hundred digits across the table."""
    return f"{x * 100:.2e}%" if abs(x) >= 1e4 else f"{x:.{dec}%}"


def _pvalue(x: float) -> str:
    return "<0.001" if 0 <= x < 0.001 else f"{x:.3f}"


#: kind -> formatter of a finite float. Add a kind here, never a format string at a call site.
KINDS: dict[str, Callable[[float], str]] = {
    "pct": lambda x: _pct(x, 2),  # a fraction shown as a percentage (0.0123 -> 1.23%)
    "pct1": lambda x: _pct(x, 1),
    "pvalue": _pvalue,
    "ratio": lambda x: _sig(x, 3),  # Sharpe, beta, correlation-like numbers
    "num": lambda x: _sig(x, 4),  # anything else measured
    "fixed2": lambda x: f"{x:,.2f}",
    "price": lambda x: f"{x:,.2f}" if abs(x) >= 1 else _sig(x, 4),
    "int": lambda x: f"{round(x):,}",
    "duration": fmt_duration,
    "signed": lambda x: f"{x:+.2f}",
}


def fmt(v: Any, kind: str = "num") -> str:
    """One value as text: ``kind`` is a key of :data:`KINDS` or ``"text"``.

    Missing values (None, NaN) show as an en dash, infinities as ``∞``/``-∞``.
    """
    if kind == "text":
        return _DASH if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    if kind not in KINDS:
        raise KeyError(f"unknown number kind {kind!r}; one of {sorted(KINDS)} or 'text'")
    x = _finite(v)
    if x is None:
        return _DASH if not isinstance(v, str) or not v else v
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return KINDS[kind](x)


def header(name: str, unit: str = "") -> str:
    """A column header with its unit: ``header("half-life", "s")`` -> ``"half-life (s)"``."""
    return f"{name} ({unit})" if unit else name


def _display(frame: pd.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for c in frame.columns:
        kind = kinds.get(c, "text" if not pd.api.types.is_numeric_dtype(frame[c]) else "num")
        out[c] = [fmt(v, kind) for v in frame[c]]
    return out


def table(
    frame: pd.DataFrame,
    *,
    kinds: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    css: pd.DataFrame | None = None,
    tooltips: pd.DataFrame | None = None,
    caption: str = "",
    index: bool = False,
    cls: str = "",
    right: Sequence[str] = (),
) -> Styler:
    """``frame`` as lq shows every table (a pandas ``Styler``).

    Parameters
    ----------
    frame
        The values (raw numbers; ``.data`` of the result keeps them, under the shown headers).
    kinds
        Column -> kind of :data:`KINDS` (or ``"text"``). Numeric columns default to ``num``,
        others to ``text``. Every non-text column is right-aligned, its header too.
    headers
        Column -> header shown (put the unit in it, see :func:`header`).
    css, tooltips
        Same-shaped frames of per-cell CSS (e.g. :data:`GREY_CSS`) and tooltip text.
    caption
        A line under the table.
    index
        Show the index (as the first, left-aligned column).
    cls
        Extra CSS class of the ``<table>`` (besides :data:`TABLE_CLASS`).
    right
        Text columns to right-align as well (figures that are formatted already).

    ``.to_html()`` gives the dashboard's HTML; a notebook displays the Styler itself;
    :func:`text_table` gives the same cells as plain text for a terminal.
    """
    kinds = dict(kinds or {})
    for c in frame.columns:
        kinds.setdefault(c, "text" if not pd.api.types.is_numeric_dtype(frame[c]) else "num")
    shown = dict(headers or {})
    data = frame.rename(columns=shown)
    kinds_shown = {shown.get(c, c): k for c, k in kinds.items()}
    styler = data.style.format(
        {c: (lambda v, k=k: fmt(v, k)) for c, k in kinds_shown.items() if c in data.columns}
    )
    # no index, or the index without an extra header row for its name
    styler = styler.hide(axis="index", names=index)
    right_shown = {shown.get(c, c) for c in right}
    numeric = [
        i
        for i, c in enumerate(data.columns)
        if kinds_shown.get(c, "text") != "text" or c in right_shown
    ]
    styles: list[dict[str, Any]] = [
        {"selector": "", "props": "border-collapse: collapse; font-size: 13px;"},
        {
            "selector": "th",
            "props": "text-align: left; padding: 3px 10px; font-weight: 600;"
            " border-bottom: 1px solid rgba(128,128,128,0.6); white-space: nowrap;",
        },
        {
            "selector": "td",
            "props": "padding: 2px 10px; text-align: left;"
            " border-bottom: 1px solid rgba(128,128,128,0.18);",
        },
        {"selector": "tbody tr:hover", "props": "background: rgba(128,128,128,0.12);"},
        {
            "selector": "caption",
            "props": "caption-side: bottom; text-align: left; padding-top: 4px;"
            " font-size: 90%; opacity: 0.8;",
        },
    ]
    for i in numeric:
        styles.append(
            {
                "selector": f"td.col{i}, th.col_heading.col{i}",
                "props": "text-align: right; font-variant-numeric: tabular-nums;"
                " white-space: nowrap;",
            }
        )
    classes = f"{TABLE_CLASS} {cls}".strip()
    styler = styler.set_table_styles(styles).set_table_attributes(f'class="{classes}"')
    if css is not None:
        cell_css = css.rename(columns=shown)
        styler = styler.apply(lambda _f: cell_css, axis=None)
    if tooltips is not None:
        styler = styler.set_tooltips(tooltips.rename(columns=shown))
    if caption:
        styler = styler.set_caption(caption)
    return styler


def text_table(
    frame: pd.DataFrame,
    *,
    kinds: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    mark: pd.DataFrame | None = None,
    index: bool = False,
) -> str:
    """The same cells as :func:`table`, as aligned plain text (numbers right-aligned).

    ``mark``: a same-shaped boolean frame; marked cells get a trailing ``*`` (the terminal's
    grey: say what the star means under the table).
    """
    kinds = dict(kinds or {})
    shown = dict(headers or {})
    disp = _display(frame, kinds)
    if mark is not None:
        disp = disp.where(~mark.reindex_like(disp).fillna(False).astype(bool), disp + "*")
    cols: list[tuple[str, list[str], bool]] = []
    if index:
        cols.append(("", [str(i) for i in frame.index], False))
    for c in frame.columns:
        kind = kinds.get(c, "text" if not pd.api.types.is_numeric_dtype(frame[c]) else "num")
        cols.append((shown.get(c, str(c)), list(disp[c]), kind != "text"))
    widths = [max([len(h), *map(len, vals)]) for h, vals, _ in cols]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            (c.rjust(w) if right else c.ljust(w))
            for c, w, (_h, _v, right) in zip(cells, widths, cols, strict=True)
        ).rstrip()

    rows = [line([h for h, _v, _r in cols]), line(["-" * w for w in widths])]
    for i in range(len(frame)):
        rows.append(line([vals[i] for _h, vals, _r in cols]))
    return "\n".join(rows)
