"""Stop-loss and time stop, applied by the engine to every strategy.

Both are checked on the *close* of each bar and, like any signal, act on the next bar's open:

* ``stop_loss``: exit when the open position's mark-to-market loss, measured from the entry
  bar's open price to the current close, reaches ``stop_loss`` times the position's gross
  entry notional (``sum |quantity| * entry open``). The fill is the next open, so a gap
  can make the realised loss larger than the stop: that is what would really happen.
* ``time_stop_bars``: exit once a position has been held for this many bars.

After a stop the engine stays flat until the strategy's target weights change.
"""

from __future__ import annotations

import dataclasses

from lq.backtest._config import Config, check_number
from lq.errors import ValidationError

__all__ = ["Stops"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stops(Config):
    """Engine-level exits; ``None`` disables each.

    Parameters
    ----------
    stop_loss
        Loss fraction of gross entry notional that closes the position (0.02 = 2 %).
    time_stop_bars
        Maximum number of bars a position is held.
    """

    stop_loss: float | None = None
    time_stop_bars: int | None = None

    def _validate(self) -> None:
        check_number(
            "Stops", "stop_loss", self.stop_loss, minimum=0.0, exclusive=True, allow_none=True
        )
        t = self.time_stop_bars
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise ValidationError("Stops.time_stop_bars", t, "must be an int >= 1 or None")
