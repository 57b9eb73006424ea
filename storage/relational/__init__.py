"""The relational store: apps, builds, jobs, tokens, flags; SQLite or PostgreSQL."""

from storage.relational.protocol import Relational, Transaction

__all__ = ["Relational", "Transaction"]
