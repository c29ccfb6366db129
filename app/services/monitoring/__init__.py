"""Monitoring after rollout: collect PIM activity per tenant, and assemble the reports on it."""
