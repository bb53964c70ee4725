"""The public names of lq.feeds (websockets' test_exports.py pattern)."""

from __future__ import annotations

import lq.feeds


def test_public_api_is_exactly_all():
    assert sorted(lq.feeds.__all__) == sorted(
        [
            "ENDPOINTS",
            "AttemptBudget",
            "BackfillRequest",
            "Backoff",
            "BinanceClient",
            "BookSync",
            "DepthParser",
            "Endpoint",
            "FeedStatus",
            "L2Book",
            "Parser",
            "RestClient",
            "Sequencer",
            "Step",
            "plan_urls",
            "resolve_endpoint",
            "stream_name",
            "to_us",
        ]
    )
    for name in lq.feeds.__all__:
        assert getattr(lq.feeds, name) is not None
