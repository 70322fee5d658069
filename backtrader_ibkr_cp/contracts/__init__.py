"""Contracts: spec parsing, and symbol/spec/conid -> Contract resolution with a cache."""

from __future__ import annotations

from .resolver import AmbiguousContract, ContractNotFound, ContractResolver
from .spec import ContractSpec

__all__ = ["AmbiguousContract", "ContractNotFound", "ContractResolver", "ContractSpec"]
