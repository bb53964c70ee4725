"""Plotly figures of a lab run (the notebook's charts; drawing only, no statistics)."""

from __future__ import annotations

from typing import Any

__all__ = ["lab_figure"]


def lab_figure(lab: Any) -> Any:
    """Three panels: the primary loss per model (baselines grey), the calibration curve
    (sign targets) or forecast against outcome (others), and the equity after costs of
    the best model, the best baseline and buy-and-hold."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    ev = lab.evaluation
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            f"out-of-sample {ev.primary} (lower is better)",
            "calibration" if lab.target.kind == "sign" else "forecast vs outcome",
            "equity after costs",
        ),
    )
    pooled = ev.pooled
    colours = ["#9e9e9e" if k == "baseline" else "#42a5f5" for k in pooled["kind"]]
    fig.add_trace(
        go.Bar(x=list(pooled.index), y=pooled[ev.primary], marker_color=colours, showlegend=False),
        row=1,
        col=1,
    )
    lo, hi = float(pooled[ev.primary].min()), float(pooled[ev.primary].max())
    pad = (hi - lo) * 0.5 or abs(hi) * 0.01 or 1.0
    fig.update_yaxes(range=[lo - pad, hi + pad], row=1, col=1)
    best = ev.best_model
    if lab.target.kind == "sign":
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"dash": "dot", "color": "#777"},
                name="ideal",
            ),
            row=1,
            col=2,
        )
        for name in dict.fromkeys([best, ev.best_baseline]):
            c = ev.calibration[name]
            fig.add_trace(
                go.Scatter(
                    x=c["p_mean"],
                    y=c["frequency"],
                    mode="lines+markers",
                    name=f"{name} calibration",
                ),
                row=1,
                col=2,
            )
    else:
        fr = lab.predictions[best].frame
        fig.add_trace(
            go.Scattergl(
                x=fr["pred"], y=fr["y"], mode="markers", marker={"size": 3}, name=f"{best}"
            ),
            row=1,
            col=2,
        )
    if lab.trading is not None:
        for name in dict.fromkeys([best, ev.best_baseline]):
            res = lab.trading.results[name]
            fig.add_trace(
                go.Scatter(x=res.equity.index, y=res.equity, name=f"{name} equity"), row=1, col=3
            )
        res = lab.trading.results[best]
        fig.add_trace(
            go.Scatter(x=res.benchmark.index, y=res.benchmark, name="buy and hold"), row=1, col=3
        )
    fig.update_layout(
        template="plotly_dark", height=380, margin={"t": 50, "l": 40, "r": 10, "b": 30}
    )
    return fig
