"""OMS: order lifecycle (submit, cancel, amend, queries, order and fill streams).

Source of truth: JetStream ORDERS (orders.<account_id>.<symbol>), one OrderEvent per change with Nats-Msg-Id =
event_id = "<order_id>:<version>"; the order id is derived from (account_id, client_order_id), so a SubmitOrder
retried after any failure maps onto the same event id and JetStream deduplicates it. Events driven by a venue
report carry the header Trade-Report-Id, so report idempotency survives a restart. At start the OMS replays
ORDERS before it serves, then consumes EXEC (execution reports) and RISK (risk.killswitch.>) with durable
consumers and keeps following ORDERS.
"""
