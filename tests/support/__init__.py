"""What tests share: instants, simulators, a recording strategy, ground-truth rows.

Imported as ``tests.support`` (the repository root is on pytest's ``pythonpath``).
"""
