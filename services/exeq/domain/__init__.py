"""exeq domain: order routing decisions, slicing schedules, parent order state (no grpc, no generated code)."""
