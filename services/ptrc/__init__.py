"""ptrc: net positions per account and symbol from the fill log (JetStream FILLS), and reconciliation."""
