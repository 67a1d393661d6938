"""Workflow probes on a fixed schedule, their samples and the write ledger."""
