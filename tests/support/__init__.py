"""What tests share: instants (``instants``), simulators (``sims``), driving a fake clock
(``clocks``), client settings (``policies``), a recording strategy (``recorder``) and
ground-truth rows (``truth``). The fixtures built on them are in ``tests/conftest.py``.

Imported as ``tests.support`` (the repository root is on pytest's ``pythonpath``); helpers of
one folder are imported as ``tests.<folder>.<module>``.
"""
