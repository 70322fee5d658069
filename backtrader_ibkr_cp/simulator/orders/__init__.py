"""IBKR's order engine and one trading account, played by the simulator."""
