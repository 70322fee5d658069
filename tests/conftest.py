"""Fixtures shared by every test folder."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fail the test if it leaves a non-daemon or package thread running."""
    before = set(threading.enumerate())
    yield
    deadline = 5.0
    import time

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.05)
    raise AssertionError(f"threads left running: {[t.name for t in extra]}")


@pytest.fixture(autouse=True)
def _private_pacing_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give each test its own shared-pacing folder ($IBKR_CP_PACING_DIR): a simulator that
    reuses a port an earlier test's simulator had must not inherit that test's penalty or
    in-flight entries (the ledger is keyed by host and port)."""
    monkeypatch.setenv("IBKR_CP_PACING_DIR", str(tmp_path_factory.mktemp("pacing")))
