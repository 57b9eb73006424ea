"""The GitHub App's own credentials: the App JWT (RS256, signed with the App's private key)
and the installation tokens GitHub exchanges it for, kept until shortly before they expire.

GitHub refuses a JWT whose `iat` lies in its future or whose `exp` is more than ten minutes
after `iat`; `iat` a minute in the past absorbs clock drift, and `exp` nine minutes ahead of
now keeps the span at ten minutes exactly."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import jwt


class AppKeyError(Exception):
    """The App's private key cannot be read or used (a configuration error)."""


JWT_PAST_S = 60
JWT_FUTURE_S = 540
TOKEN_MARGIN_S = 300
"""An installation token is used until this long before its `expires_at` (GitHub gives an
hour): a request started with it must not outlive it."""


@dataclass
class AppCredentials:
    app_id: str
    key_path: str
    _key: bytes | None = field(default=None, repr=False)
    _tokens: dict[int, tuple[str, float]] = field(default_factory=dict, repr=False)

    def jwt(self, now: float | None = None) -> str:
        """A fresh App JWT (cheap: signing an RS256 token takes well under a millisecond)."""
        moment = int(time.time() if now is None else now)
        claims = {"iat": moment - JWT_PAST_S, "exp": moment + JWT_FUTURE_S, "iss": self.app_id}
        try:
            return jwt.encode(claims, self._private_key(), algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise AppKeyError(f"HUTCH_GITHUB_APP_KEY is not an RSA private key: {exc}") from exc

    def _private_key(self) -> bytes:
        if self._key is None:
            try:
                self._key = Path(self.key_path).read_bytes()
            except OSError as exc:
                raise AppKeyError(
                    f"cannot read the GitHub App key (HUTCH_GITHUB_APP_KEY): {exc}"
                ) from exc
        return self._key

    def token(self, installation_id: int) -> str | None:
        """The cached installation token, unless it is about to expire."""
        found = self._tokens.get(installation_id)
        if found is None or found[1] - TOKEN_MARGIN_S <= time.time():
            return None
        return found[0]

    def keep(self, installation_id: int, token: str, expires_at: str) -> None:
        """Cache a token GitHub issued; `expires_at` as GitHub writes it (ISO 8601, `Z`)."""
        try:
            until = datetime.fromisoformat(expires_at).timestamp()
        except ValueError:
            return  # usable now, not cached: a token of unknown lifetime is fetched anew
        self._tokens[installation_id] = (token, until)

    def forget(self, installation_id: int) -> None:
        """Drop a token GitHub no longer accepts (installation suspended or removed)."""
        self._tokens.pop(installation_id, None)
