"""The dashboard's Backtest tab (its charts live in :mod:`lq.backtest.charts`).

Choose a strategy and its parameters, costs, sizing and stops; run it on stored bars on a
worker thread (``loop.run_in_executor``), so the live tabs keep refreshing; see equity
against buy-and-hold, the drawdown, the trades marked on the price chart, the metrics table
and the history of stored runs (``lq backtest --every`` runs included).

Nothing here computes a statistic: bars come from :func:`lq.backtest.runs.load_bars`, numbers
from :func:`lq.backtest.run_backtest` and :func:`lq.backtest.check_lookahead`, and runs are
stored with :func:`lq.backtest.runs.record_backtest`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import ipywidgets as W
import pandas as pd

from lq.backtest import (
    STRATEGIES,
    BacktestResult,
    Costs,
    LookaheadReport,
    Sizing,
    Stops,
    available_strategies,
    check_lookahead,
    run_backtest,
)
from lq.backtest.charts import (
    GREY_CSS,
    RUINED_CSS,
    TRACE_NAMES,
    fill_figure,
    format_metric,
    metrics_frame,
    metrics_table,
    new_figure,
    result_figure,
    ruin_note,
)
from lq.backtest.runs import (
    BAR_INTERVALS,
    DEFAULT_INTERVAL,
    Run,
    list_runs,
    load_bars,
    record_backtest,
)
from lq.dashboard._widgets import (
    empty_state_html,
    error_html,
    figure_widget,
    labelled,
    note_html,
    sync_figure_state,
)
from lq.errors import LqError, ValidationError
from lq.formatting import table

__all__ = [
    "INTERVALS",
    "RANGES",
    "TRACE_NAMES",
    "BacktestOutcome",
    "BacktestTab",
    "fill_figure",
    "metrics_frame",
    "metrics_table",
    "new_figure",
    "result_figure",
    "run_and_store",
    "runs_html",
]

log = logging.getLogger(__name__)

INTERVALS = BAR_INTERVALS
#: Range choices of the tab, as the ``last`` window before the newest stored bar.
RANGES: dict[str, str | None] = {
    "last 15 min": "15m",
    "last 1 h": "1h",
    "last 6 h": "6h",
    "last 24 h": "24h",
    "last 7 d": "7d",
    "everything": None,
}


# ----------------------------------------------------------------------------- runs
def runs_html(runs: pd.DataFrame, *, max_rows: int = 25) -> str:
    """The history of stored runs as an lq table (newest first; scheduled ones marked).

    A ruined run's Sharpe reads "ruined" in red; a Sharpe from a short sample is greyed
    with the reason as its tooltip (:mod:`lq.formatting`)."""
    if runs.empty:
        return note_html("no stored runs yet (run one here, or `lq backtest`)")
    head = runs.head(max_rows)
    rows: list[dict[str, str]] = []
    css: list[dict[str, str]] = []
    tips: list[dict[str, str]] = []
    for r in head.itertuples(index=False):
        p = ", ".join(f"{k}={v}" for k, v in (r.params or {}).items() if v is not None)
        ruined = bool(getattr(r, "ruined", False))
        caveat = str(getattr(r, "caveat", "") or "")
        dsr_caveat = str(getattr(r, "dsr_caveat", "") or "")
        rows.append(
            {
                "time (UTC)": r.time.strftime("%Y-%m-%d %H:%M:%S"),
                "kind": str(r.kind),
                "scheduled": "⏱ yes" if r.scheduled else "",
                "strategy": str(r.strategy),
                "symbols": str(r.symbols),
                "interval": str(r.interval or ""),
                "return": format_metric("total_return", r.total_return),
                "Sharpe": format_metric("sharpe", r.sharpe, ruined=ruined),
                "max DD": format_metric("max_drawdown", r.max_drawdown),
                "trades": format_metric("number_of_trades", r.number_of_trades),
                "DSR": format_metric("dsr", r.dsr, ruined=ruined),
                "parameters": p,
                "run id": str(r.run_id),
            }
        )
        sharpe_css = RUINED_CSS if ruined else GREY_CSS if caveat else ""
        dsr_css = RUINED_CSS if ruined else GREY_CSS if dsr_caveat else ""
        css.append({"Sharpe": sharpe_css, "DSR": dsr_css})
        tips.append(
            {
                "Sharpe": "equity reached zero" if ruined else caveat,
                "DSR": "" if ruined else dsr_caveat,
            }
        )
    frame = pd.DataFrame(rows)
    # object columns: the unset cells are float NaN, and pandas refuses "" into a float column
    style = pd.DataFrame(css, columns=frame.columns, dtype=object).fillna("")
    tip = pd.DataFrame(tips, columns=frame.columns, dtype=object).fillna("")
    more = ""
    if len(runs) > max_rows:
        more = f"showing the newest {max_rows} of {len(runs)} runs. "
    greyed = [
        name
        for name, col in (("Sharpe", "caveat"), ("DSR", "dsr_caveat"))
        if col in runs.columns and head[col].astype(bool).any()
    ]
    if greyed:
        more += (
            f"Greyed {' and '.join(greyed)}: from too short a sample (under 1 day of bars or "
            "30 trades) to mean anything; hover for the reason."
        )
    styler = table(
        frame,
        kinds={c: "text" for c in frame.columns},
        right=["return", "Sharpe", "max DD", "trades", "DSR"],
        css=style,
        tooltips=tip,
        caption=more,
        cls="lq-backtest-runs",
    )
    return styler.to_html()


# ------------------------------------------------------------------- the run (a thread)
@dataclasses.dataclass(frozen=True, kw_only=True)
class BacktestOutcome:
    """What one run of the tab produced (built on a worker thread, drawn on the loop)."""

    result: BacktestResult
    data: pd.DataFrame | dict[str, pd.DataFrame]
    lookahead: LookaheadReport | None
    run: Run | None
    seconds: float


def run_and_store(
    *,
    db: str | os.PathLike[str],
    symbols: Sequence[str],
    strategy: str,
    params: Mapping[str, Any],
    interval: str = DEFAULT_INTERVAL,
    last: str | None = None,
    costs: Costs | None = None,
    sizing: Sizing | None = None,
    stops: Stops | None = None,
    capital: float = 10_000.0,
    lookahead: bool = True,
    store: bool = True,
) -> BacktestOutcome:
    """Load bars, backtest, check for look-ahead and store the run (blocking; thread-safe).

    The tab calls this on its executor; it opens its own connections.
    """
    t0 = time.perf_counter()
    costs = costs or Costs()
    data = load_bars(
        db,
        list(symbols),
        interval=interval,
        last=last,
        quotes="last" if costs.slippage == "half_spread" else "none",
    )
    kw: dict[str, Any] = {"costs": costs, "sizing": sizing, "stops": stops}
    result = run_backtest(data, strategy, params, capital=capital, **kw)
    report = check_lookahead(data, strategy, params, **kw) if lookahead else None
    run = None
    if store:
        extra: dict[str, Any] = {"interval": interval, "source": "dashboard"}
        if report is not None:
            extra["lookahead_passed"] = report.passed
        run = record_backtest(db, result, extra=extra)
    return BacktestOutcome(
        result=result,
        data=data,
        lookahead=report,
        run=run,
        seconds=time.perf_counter() - t0,
    )


# ------------------------------------------------------------------------ parameter form
def _field_widget(name: str, hint: Any, default: Any) -> W.Widget:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        return W.Dropdown(options=list(args), value=default)
    if hint is bool:
        return W.Checkbox(value=bool(default), indent=False)
    if hint is int:
        return W.IntText(value=default)
    if hint is float:
        return W.FloatText(value=default)
    # optional numbers (and anything else): text, blank meaning None
    return W.Text(value="" if default is None else str(default), placeholder="none")


def _parse_field(name: str, hint: Any, widget: W.Widget) -> Any:
    value = widget.value
    if not isinstance(widget, W.Text) or isinstance(widget, W.Textarea):
        return value
    text = str(value).strip()
    if not text or text.lower() == "none":
        return None
    opts = [a for a in typing.get_args(hint) if a is not type(None)]
    for typ in (int, float):
        if typ in opts:
            try:
                return typ(text)
            except ValueError:
                continue
    if opts and str not in opts:
        raise ValidationError(name, text, f"expected {' or '.join(t.__name__ for t in opts)}")
    return text


def _strategy_fields(strategy: str) -> list[tuple[str, Any, Any]]:
    """``(name, type hint, default)`` of a built-in strategy's parameters (no ``y``/``x``:
    the symbol pickers choose the legs)."""
    cls = STRATEGIES[strategy].params
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in ("y", "x"):
            continue
        out.append((f.name, hints[f.name], f.default))
    return out


# ------------------------------------------------------------------------------ the tab
class BacktestTab:
    """The dashboard's Backtest tab.

    Parameters
    ----------
    db
        The SQLite database (bars are read and runs stored there).
    symbols
        Symbols offered by the pickers (default: those stored).
    executor
        Where backtests run (default: a one-thread pool owned by the tab).

    Notes
    -----
    :meth:`run` starts a backtest with ``loop.run_in_executor`` when an event loop runs (the
    dashboard, Jupyter, Voila) and returns the future; the figure, metrics and history are
    drawn when it finishes, on the loop. Without a running loop it runs inline.
    """

    title = "Backtest"

    def __init__(
        self,
        *,
        db: str | os.PathLike[str],
        symbols: Sequence[str] | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.db = Path(db)
        if symbols is None:
            from lq.store import Store

            try:
                with Store(self.db) as st:
                    symbols = st.symbols()
            except LqError:
                symbols = []
        syms = [s.upper() for s in symbols]
        self.symbols = syms
        self._executor = executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="lq-backtest"
        )
        self.pending: asyncio.Future[BacktestOutcome] | None = None
        self.outcome: BacktestOutcome | None = None
        self.error: str | None = None
        self.runs_version: tuple[int, int] | None = None
        self.runs = pd.DataFrame()

        names = available_strategies()
        self.strategy = W.Dropdown(
            options=names, value="pairs_zscore" if "pairs_zscore" in names else names[0]
        )
        first = syms[0] if syms else None
        second = syms[1] if len(syms) > 1 else first
        self.symbol1 = W.Dropdown(options=syms, value=first)
        self.symbol2 = W.Dropdown(options=syms, value=second)
        # the same default as `lq backtest` and the notebook (lq.backtest.runs.DEFAULT_INTERVAL)
        self.interval = W.Dropdown(options=list(INTERVALS), value=DEFAULT_INTERVAL)
        self.range = W.Dropdown(options=list(RANGES), value="everything")
        self.fee_bps = W.FloatText(value=10.0)
        self.slippage = W.Dropdown(options=["fixed_bps", "half_spread"], value="fixed_bps")
        self.slippage_bps = W.FloatText(value=1.0)
        self.sizing = W.Dropdown(
            options=["fixed_notional", "volatility_target"], value="fixed_notional"
        )
        self.notional = W.FloatText(value=10_000.0)
        self.target_volatility = W.FloatText(value=0.2)
        self.stop_loss = W.FloatText(value=0.0)
        self.time_stop_bars = W.IntText(value=0)
        self.capital = W.FloatText(value=10_000.0)
        self.lookahead = W.Checkbox(value=True, description="look-ahead check", indent=False)
        self.save = W.Checkbox(value=True, description="save to history", indent=False)
        for box in (self.lookahead, self.save):
            box.layout.width = "auto"
            box.layout.margin = "0 12px"
        self.button = W.Button(description="Run backtest", icon="play", button_style="primary")
        self.status = W.HTML(note_html("choose a strategy and press Run"))
        self.param_widgets: dict[str, tuple[Any, W.Widget]] = {}
        self.params_box = W.HBox(layout=W.Layout(flex_flow="row wrap", align_items="center"))
        self.fig = figure_widget(new_figure())  # plotly's module as the page loaded it
        # no empty axes before the first run: a clear empty state, the figure once drawn
        # (the figure's view is created when it is first shown, so it measures the page)
        self.fig_box = W.VBox([], layout=W.Layout(width="100%"))
        self.empty = W.HTML(
            empty_state_html(
                "No backtest yet",
                "Pick a strategy, its parameters and costs above, then press Run backtest: "
                "price and trades, equity against buy-and-hold, the drawdown and the metrics "
                "appear here.",
            )
        )
        self.metrics = W.HTML()
        self.history = W.HTML(note_html("no stored runs yet"))

        self.strategy.observe(lambda _c: self._build_params(), names="value")
        self.slippage.observe(self._slippage_changed, names="value")
        self.button.on_click(lambda _b: self.run())
        self._build_params()
        row = W.Layout(flex_flow="row wrap", align_items="center")
        self.widget = W.VBox(
            [
                W.HBox(
                    [
                        labelled("strategy ", self.strategy, "170px"),
                        labelled("symbol ", self.symbol1, "130px"),
                        labelled("second (pairs) ", self.symbol2, "130px"),
                        labelled("interval ", self.interval, "80px"),
                        labelled("range ", self.range, "130px"),
                    ],
                    layout=row,
                ),
                self.params_box,
                W.HBox(
                    [
                        labelled("fee bps ", self.fee_bps, "70px"),
                        labelled("slippage ", self.slippage, "120px"),
                        labelled("bps ", self.slippage_bps, "70px"),
                        labelled("sizing ", self.sizing, "150px"),
                        labelled("notional ", self.notional, "100px"),
                        labelled("target vol ", self.target_volatility, "70px"),
                        labelled("stop loss ", self.stop_loss, "70px"),
                        labelled("time stop bars ", self.time_stop_bars, "80px"),
                        labelled("capital ", self.capital, "100px"),
                    ],
                    layout=row,
                ),
                W.HBox(
                    [self.button, self.lookahead, self.save, self.status],
                    layout=W.Layout(align_items="center"),
                ),
                self.empty,
                self.fig_box,
                W.HBox([self.metrics], layout=W.Layout(overflow="auto")),
                W.HTML("<h4>Run history</h4>"),
                self.history,
            ]
        )
        self.widget.add_class("lq-backtest-tab")
        sync_figure_state(self.fig)

    # -- form -----------------------------------------------------------------------------
    def _build_params(self) -> None:
        name = self.strategy.value
        self.param_widgets = {
            f: (hint, _field_widget(f, hint, default))
            for f, hint, default in _strategy_fields(name)
        }
        self.params_box.children = [
            labelled(f"{f} ", w, "120px" if isinstance(w, W.Dropdown) else "80px")
            for f, (_h, w) in self.param_widgets.items()
        ]
        self.symbol2.disabled = STRATEGIES[name].symbols < 2

    def _slippage_changed(self, change: dict[str, Any]) -> None:
        self.slippage_bps.disabled = change["new"] == "half_spread"

    def set_params(self, **values: Any) -> None:
        """Set parameter inputs by name (as if typed in); unknown names are refused."""
        for k, v in values.items():
            if k not in self.param_widgets:
                raise ValidationError(
                    "params",
                    k,
                    f"not a parameter of {self.strategy.value}: {list(self.param_widgets)}",
                )
            w = self.param_widgets[k][1]
            w.value = ("" if v is None else str(v)) if isinstance(w, W.Text) else v

    def params(self) -> dict[str, Any]:
        """The strategy parameters as entered (blank optional fields are None)."""
        return {f: _parse_field(f, hint, w) for f, (hint, w) in self.param_widgets.items()}

    def settings(self) -> dict[str, Any]:
        """Everything :func:`run_and_store` needs, read from the widgets (on the loop)."""
        name = self.strategy.value
        n = STRATEGIES[name].symbols
        if self.symbol1.value is None:
            raise ValidationError("symbols", self.symbols, "no symbols stored or configured")
        syms = [self.symbol1.value]
        if n >= 2:
            if self.symbol2.value in (None, self.symbol1.value):
                raise ValidationError(
                    "second symbol", self.symbol2.value, "a pair needs two different symbols"
                )
            syms.append(self.symbol2.value)
        half = self.slippage.value == "half_spread"
        stop = self.stop_loss.value
        tsb = self.time_stop_bars.value
        sizing = (
            Sizing(method="fixed_notional", notional=self.notional.value)
            if self.sizing.value == "fixed_notional"
            else Sizing(method="volatility_target", target_volatility=self.target_volatility.value)
        )
        return {
            "db": self.db,
            "symbols": syms,
            "strategy": name,
            "params": self.params(),
            "interval": self.interval.value,
            "last": RANGES[self.range.value],
            "costs": Costs(
                fee_bps=self.fee_bps.value,
                slippage_bps=0.0 if half else self.slippage_bps.value,
                slippage=self.slippage.value,
            ),
            "sizing": sizing,
            "stops": Stops(
                stop_loss=stop if stop and stop > 0 else None,
                time_stop_bars=tsb if tsb and tsb > 0 else None,
            ),
            "capital": self.capital.value,
            "lookahead": self.lookahead.value,
            "store": self.save.value,
        }

    # -- running --------------------------------------------------------------------------
    def run(self) -> asyncio.Future[BacktestOutcome] | None:
        """Start a backtest of the current settings without blocking the event loop.

        Returns the future (or None when it ran inline for want of a running loop, or
        when the settings were refused: the status line says why).
        """
        if self.pending is not None and not self.pending.done():
            self.status.value = note_html("a backtest is already running")
            return self.pending
        try:
            kwargs = self.settings()
        except LqError as exc:
            self._fail(exc)
            return None
        job: Callable[[], BacktestOutcome] = lambda: run_and_store(**kwargs)  # noqa: E731
        self.error = None
        self.button.disabled = True
        self.status.value = note_html(
            f"running {kwargs['strategy']} on {', '.join(kwargs['symbols'])} ..."
        )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            try:
                self._apply(job())
            except Exception as exc:
                self._fail(exc)
            return None
        fut = loop.run_in_executor(self._executor, job)
        fut.add_done_callback(self._done)
        self.pending = fut
        return fut

    def _done(self, fut: asyncio.Future[BacktestOutcome]) -> None:
        if fut.cancelled():
            self.button.disabled = False
            self.status.value = note_html("cancelled")
            return
        exc = fut.exception()
        if exc is not None:
            self._fail(exc)
        else:
            self._apply(fut.result())

    def _fail(self, exc: BaseException) -> None:
        self.button.disabled = False
        if not isinstance(exc, LqError):
            log.error("backtest failed", exc_info=exc)
        self.error = str(exc)
        self.status.value = error_html(f"backtest failed: {exc}")

    def _apply(self, out: BacktestOutcome) -> None:
        self.outcome = out
        self.button.disabled = False
        fill_figure(self.fig, out.result, out.data)
        if not self.fig_box.children:
            sync_figure_state(self.fig)  # the view about to be created renders these traces
            self.empty.layout.display = "none"
            self.fig_box.children = [self.fig]
            # a view created now measures its container once, maybe before the layout
            # settles (then plotly keeps its 700 px default): measure again shortly after
            # (no running loop, a plain console: nothing is shown live, nothing to refit)
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_later(0.8, self._refit_width)
        self.metrics.value = metrics_table(out.result).to_html()
        bits = [f"{out.result.metrics.bars:,} bars in {out.seconds:.2f} s"]
        if out.result.ruined:
            bits.append(ruin_note(out.result.metrics.ruined_at).upper())
        if out.lookahead is not None:
            bits.append(
                "look-ahead check passed"
                if out.lookahead.passed
                else f"LOOK-AHEAD DETECTED at {out.lookahead.first_difference}"
            )
        if out.run is not None:
            bits.append(f"stored as {out.run.run_id}")
        text = "; ".join(bits)
        ok = (out.lookahead is None or out.lookahead.passed) and not out.result.ruined
        self.status.value = note_html(text) if ok else error_html(text)
        self.refresh_history(force=True)

    def _refit_width(self) -> None:
        try:
            self.fig.layout.autosize = False
            self.fig.layout.autosize = True
        except Exception:  # a closed widget: nothing to measure
            log.debug("refit of the backtest figure failed", exc_info=True)

    # -- history --------------------------------------------------------------------------
    def _version(self) -> tuple[int, int] | None:
        from lq.store.sqlite import connect_reader

        if not self.db.exists():
            return None
        conn = connect_reader(self.db)
        try:
            row = conn.execute(
                "SELECT count(*), coalesce(max(id), 0) FROM backtest_runs"
            ).fetchone()
        except Exception:  # a database without the table yet
            return None
        finally:
            conn.close()
        return int(row[0]), int(row[1])

    def refresh_history(self, *, force: bool = False) -> None:
        """Redraw the run history when rows were added (scheduled runs appear by themselves)."""
        version = self._version()
        if version is None or (version == self.runs_version and not force):
            return
        self.runs_version = version
        self.runs = list_runs(self.db, limit=200)
        self.history.value = runs_html(self.runs)

    def refresh(self) -> None:
        """Cheap: one count query; the history is redrawn only when runs were added."""
        self.refresh_history()
