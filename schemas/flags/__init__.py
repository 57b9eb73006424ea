"""Feature flags as data: definitions (with their validation), the events that change
them, and the evaluation reports SDKs send."""
