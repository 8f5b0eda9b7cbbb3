"""live-gateway: venue adapters (prism, paper, Binance spot) -> ExecutionReports on EXEC and Fills on FILLS."""
