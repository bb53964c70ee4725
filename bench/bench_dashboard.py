"""Page open -> first chart with data, on a real ``lq dashboard --source local`` in Chromium.

Warm: Voila keeps one kernel with the imports done (``--warm-kernels 1``, the default); the
page is opened when the pool is full, five times (median; target <= 2.5 s). Cold:
``--warm-kernels 0``, a kernel started per page (median of three; target <= 8 s). Baseline
in the same run: the same browser opening a static page with one plotly chart (plotly.js
parse and first draw, no kernel), which says how fast the machine is right now.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._dashboard import browser, dashboard, open_to_first_chart, static_plotly_baseline
from bench._util import report


def main() -> int:
    with browser() as b:
        base = statistics.median(static_plotly_baseline(b) for _ in range(3))
        print(f"baseline (static plotly page, median of 3): {base:.2f} s", flush=True)
        warm: list[float] = []
        with dashboard(warm_kernels=1) as run:
            for i in range(5):
                run.wait_warm(count=i + 1)  # the pool refilled after the previous page
                took, page = open_to_first_chart(b, run.url)
                warm.append(took)
                print(f"warm open {i + 1}: {took:.2f} s", flush=True)
                page.close(run_before_unload=True)
        cold: list[float] = []
        with dashboard(warm_kernels=0) as run:
            for _ in range(3):
                took, page = open_to_first_chart(b, run.url)
                cold.append(took)
                print(f"cold open {len(cold)}: {took:.2f} s", flush=True)
                page.close(run_before_unload=True)
    w, c = statistics.median(warm), statistics.median(cold)
    print("warm runs:", ", ".join(f"{t:.2f}" for t in warm), "s")
    print("cold runs:", ", ".join(f"{t:.2f}" for t in cold), "s")
    report(
        "page open -> first chart, warm kernel (median of 5)",
        f"{w:.2f} s",
        baseline=f"static plotly page {base:.2f} s",
        ratio=w / base,
        target="<= 2.5 s",
        ok=w <= 2.5,
    )
    report(
        "page open -> first chart, cold (median of 3)",
        f"{c:.2f} s",
        baseline=f"static plotly page {base:.2f} s",
        ratio=c / base,
        target="<= 8 s",
        ok=c <= 8.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
