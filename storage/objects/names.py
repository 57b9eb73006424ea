"""Object keys and download names: the rules every adapter applies before any I/O.

A key is one to eight `/`-separated segments of portable characters. Nothing that could
climb out of the store's root or mean something else on some filesystem gets through:
no `..` or `.`-leading segment, no empty segment (so no leading, trailing or doubled `/`),
no backslash, NUL, control character, space or percent sign. The filesystem store also
keeps its own bookkeeping under `.`-prefixed names, which no key can reach.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from storage.errors import InvalidKey

MAX_KEY_LENGTH = 512
MAX_SEGMENTS = 8
MAX_SEGMENT_LENGTH = 200

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+@=,~()-]*")
# What may follow `Content-Type:`: a token/token with parameters, no line breaks.
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[ -~]*)?")


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe object key; raise InvalidKey otherwise."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("the key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"the key is longer than {MAX_KEY_LENGTH} characters")
    segments = key.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise InvalidKey(f"the key has more than {MAX_SEGMENTS} segments")
    for segment in segments:
        if not segment:
            raise InvalidKey("the key has an empty segment (leading, trailing or double '/')")
        if len(segment) > MAX_SEGMENT_LENGTH:
            raise InvalidKey(f"a key segment is longer than {MAX_SEGMENT_LENGTH} characters")
        if _SEGMENT.fullmatch(segment) is None:
            raise InvalidKey(
                f"invalid key segment {segment[:40]!r}: use letters, digits and ._+@=,~()- "
                "and do not start with '.' or '-'"
            )
    return key


def validate_content_type(value: str) -> str:
    if len(value) > 200 or _CONTENT_TYPE.fullmatch(value) is None:
        raise ValueError(f"invalid content type {value[:60]!r}")
    return value


def validate_expiry(expires_s: int, ceiling: int) -> int:
    if not 1 <= expires_s <= ceiling:
        raise ValueError(f"expiry must be between 1 and {ceiling} seconds, not {expires_s}")
    return expires_s


def content_disposition(filename: str) -> str:
    """`attachment` with the name as RFC 6266 wants it: an ASCII fallback and UTF-8 form."""
    if any(ch in filename for ch in "\r\n\0") or not filename:
        raise ValueError("a download file name cannot be empty or contain line breaks")
    fallback = "".join(
        ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%' else "_" for ch in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
