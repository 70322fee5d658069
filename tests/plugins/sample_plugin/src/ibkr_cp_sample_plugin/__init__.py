"""A sample plugin for backtrader_ibkr_cp: split adjustment, a preferred listing, request
counting, and two simulator listings of an ambiguous symbol."""
