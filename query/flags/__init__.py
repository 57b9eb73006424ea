"""Flag reads: definitions for the owner and for SDKs, OFREP, resolution of a flag for a
context, and exposure statistics."""
