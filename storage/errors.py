"""One error tree for every adapter: callers never see a driver's exceptions."""


class StorageError(Exception):
    """Base of every storage failure."""


class Unavailable(StorageError):
    """The backend cannot take or serve data right now; retrying later may succeed.

    Ingest answers 503 with Retry-After; nothing was half-written.
    """


class NoSpace(Unavailable):
    """The store's disk is too full for this write. A smaller write may fit: a writer that
    can split its data should, rather than retry the same size."""


class Backpressure(Unavailable):
    """Too much is in flight; the caller should shed load (429/503 with Retry-After)."""


class Conflict(StorageError):
    """A uniqueness or state rule refused the write."""


class BadQuery(StorageError):
    """The analytics engine refused a query as invalid (syntax, unknown column, limits)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NotFound(StorageError):
    """The object (or record) asked for does not exist."""


class TooLarge(StorageError):
    """A write went past its byte limit; it was refused whole and nothing of it was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than the limit of {limit} bytes")
        self.limit = limit


class InvalidKey(StorageError, ValueError):
    """An object key that could escape its namespace or is not portable (400 to a client)."""


class AlreadyExists(Conflict):
    """A write-once object already exists under the key; it was left as it was."""


class Corrupted(StorageError):
    """A stored object no longer holds the bytes it was recorded with (its SHA-256 differs);
    it must not be served."""
