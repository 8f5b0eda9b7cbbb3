"""sink-ticks: canonical trades and quotes from JetStream MD -> QuestDB over ILP, plus 1-minute OHLCV bars."""
