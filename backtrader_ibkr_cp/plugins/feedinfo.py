"""``FeedInfo``: one named feed (a Store and/or a data factory) and where it came from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["FeedInfo"]


@dataclass(frozen=True)
class FeedInfo:
    """A feed a user can build by name.

    ``store`` builds a backtrader Store from keyword arguments, ``data`` a data feed (either
    may be None, not both). ``source`` is ``"hook"`` (registered through
    ``ibkr_cp_register_feeds``) or ``"entry-point"`` (the ``backtrader.feeds`` group);
    ``provider`` the module or plugin that provides it; ``distribution`` the installed
    distribution (``"name version"``) or None when unknown.
    """

    name: str
    store: Callable[..., Any] | None = None
    data: Callable[..., Any] | None = None
    description: str = ""
    source: str = "hook"
    provider: str = ""
    distribution: str | None = None

    def __post_init__(self) -> None:
        if self.store is None and self.data is None:
            raise ConfigError(
                f"feed {self.name!r} needs a store or a data factory (a callable), got neither"
            )
        for role, factory in (("store", self.store), ("data", self.data)):
            if factory is not None and not callable(factory):
                raise ConfigError(
                    f"feed {self.name!r}: {role}= must be a callable, got {type(factory).__name__}"
                )

    def make_store(self, **kwargs: Any) -> Any:
        """Build the Store; ConfigError when this feed has only a data factory."""
        if self.store is None:
            raise ConfigError(
                f"feed {self.name!r} has no store; build its data directly with "
                f"make_data({self.name!r}, ...)"
            )
        return self.store(**kwargs)

    def make_data(self, **kwargs: Any) -> Any:
        """Build a data feed; ConfigError when this feed has only a store."""
        if self.data is None:
            raise ConfigError(
                f"feed {self.name!r} has no data factory; use "
                f"make_store({self.name!r}, ...).getdata(...)"
            )
        return self.data(**kwargs)
