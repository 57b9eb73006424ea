"""The analytics store: ClickHouse SQL, in-process (chDB) or on a server."""

from storage.analytics.protocol import Analytics, QueryResult

__all__ = ["Analytics", "QueryResult"]
