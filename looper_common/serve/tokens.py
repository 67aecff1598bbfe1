"""Bearer tokens from ``LOOPER_API_TOKENS``: ``token`` (every blueprint) or ``token:blueprint``.

Tokens are kept only as SHA-256 digests and looked up by digest, so neither the
table nor the time a lookup takes depends on the characters of a token a caller
guessed; nothing here ever logs or returns a token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

ENV_VAR = "LOOPER_API_TOKENS"
ALL_BLUEPRINTS = None  # the scope of an unscoped token


class TokenError(ValueError):
    """``LOOPER_API_TOKENS`` is missing or malformed (the message never contains a token)."""


@dataclass(frozen=True, slots=True)
class TokenTable:
    """Token digest -> the blueprints it may use (``None``: all of them)."""

    scopes: Mapping[bytes, frozenset[str] | None]

    def scope_of(self, token: str | bytes) -> frozenset[str] | None | bool:
        """The token's scope, or ``False`` when it is not a known token."""
        return self.scopes.get(_digest(token), False)


def _digest(token: str | bytes) -> bytes:
    raw = token.encode("utf-8", "surrogatepass") if isinstance(token, str) else token
    return hashlib.sha256(raw).digest()


def parse_tokens(text: str | None) -> TokenTable:
    """Parse ``tok1,tok2:blueprint,...``; a token listed unscoped anywhere may use every blueprint."""
    entries = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not entries:
        raise TokenError(f"{ENV_VAR} is empty: set it to one or more comma-separated tokens")
    scopes: dict[bytes, set[str] | None] = {}
    for number, entry in enumerate(entries, start=1):
        token, sep, blueprint = entry.partition(":")
        token, blueprint = token.strip(), blueprint.strip()
        if not token or (sep and not blueprint) or any(c.isspace() for c in token):
            raise TokenError(f"{ENV_VAR}: entry {number} is not 'token' or 'token:blueprint'")
        key = _digest(token)
        if not sep:
            scopes[key] = ALL_BLUEPRINTS
        elif key not in scopes or scopes[key] is not ALL_BLUEPRINTS:
            scopes.setdefault(key, set()).add(blueprint)  # type: ignore[union-attr]
    return TokenTable({k: (None if v is None else frozenset(v)) for k, v in scopes.items()})


def unknown_scopes(table: TokenTable, blueprints: set[str] | frozenset[str]) -> list[str]:
    """Blueprints named in token scopes that this server does not know (a likely typo)."""
    named = set().union(*(s for s in table.scopes.values() if s is not None))
    return sorted(named - set(blueprints))
