"""The notification service: everything that reaches a citizen."""
