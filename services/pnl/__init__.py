"""pnl: realized/unrealized PnL with fees per account, symbol and strategy, from FILLS and quote marks."""
