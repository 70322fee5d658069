"""Contracts. Pure: no I/O. Parsing of ``/iserver/secdef/search`` is in ``models.secdef``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Contract"]


@dataclass(frozen=True, slots=True)
class Contract:
    """An IBKR contract.

    ``contract_id`` is IBKR's conid. ``exchange`` is the primary listing exchange (``"NASDAQ"``),
    ``currency`` an ISO code or ``""`` when the gateway did not say, ``sec_type`` IBKR's
    security type (``"STK"``, ``"IND"``, ...). ``time_zone`` is the exchange's IANA zone.
    """

    contract_id: int
    symbol: str
    sec_type: str = "STK"
    exchange: str = ""
    currency: str = ""
    description: str = ""
    time_zone: str = "America/New_York"

    @property
    def conid(self) -> int:
        return self.contract_id

    def spec(self) -> str:
        """The ``SYMBOL-SECTYPE-EXCHANGE-CURRENCY`` spec this contract answers to.

        Parts are positional, so a currency without an exchange is written after ``SMART``
        (``"X-STK-SMART-USD"``, not ``"X-STK-USD"``, which would name exchange USD).
        """
        exchange = self.exchange or ("SMART" if self.currency else "")
        return "-".join(p for p in (self.symbol, self.sec_type, exchange, self.currency) if p)
