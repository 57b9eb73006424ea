"""One error tree for every adapter: callers never see a driver's exceptions."""


class StorageError(Exception):
    """Base of every storage failure."""


class Unavailable(StorageError):
    """The backend cannot take or serve data right now; retrying later may succeed.

    Ingest answers 503 with Retry-After; nothing was half-written.
    """


class Backpressure(Unavailable):
    """Too much is in flight; the caller should shed load (429/503 with Retry-After)."""


class Conflict(StorageError):
    """A uniqueness or state rule refused the write."""


class BadQuery(StorageError):
    """The analytics engine refused a query as invalid (syntax, unknown column, limits)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
