"""Client settings the tests share."""

from __future__ import annotations

from backtrader_ibkr_cp.client.retry import RetryPolicy

#: IBKR's retry policy with back-offs of 10, 20, 40 ms and no jitter: retries without
#: waiting noticeably (tests that are about the waits inject a fake clock instead).
FAST_RETRY = RetryPolicy(backoff_factor=0.01, jitter=0.0)
