"""Test and benchmark helpers that are not part of the trading API.

Nothing here is imported by the rest of the package; importing this package does no I/O.
"""
