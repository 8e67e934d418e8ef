"""Scrubbing: nothing that looks like a credential reaches a cassette on disk.

Applied to every cassette before it is written (and to every normalised input, so a
recording and a replay agree on what an input is).  Three rules:

- a JSON field whose *name* looks like a credential (``key``, ``token``, ``secret``,
  ``authorization``, ``password``, ``signature``, ``credential``, ``cookie``...) keeps its
  name and loses its value;
- a URL keeps its path but drops query parameters that look like credentials (signed-URL
  tokens: ``X-Amz-Signature``, ``token``, ``sig``...);
- any occurrence of a secret the recorder was handed (the upstream key, its id and secret
  halves) is replaced wherever it appears in a string (log lines, error messages).
"""
from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCRUBBED = "[scrubbed]"

#: Field and query-parameter names that carry credentials (case-insensitive, anywhere in the name).
_CREDENTIAL_NAME = re.compile(
    r"(api[_-]?key|^key$|_key$|token|secret|authori[sz]ation|password|passwd|signature|^sig$|credential|cookie|"
    r"x-amz-|x-goog-|session)",
    re.IGNORECASE,
)
#: ``Key id:secret`` / ``Bearer xyz`` written out in text.
_AUTH_TEXT = re.compile(r"\b(Key|Bearer|Basic)\s+[A-Za-z0-9._~+/=:-]{8,}")


def is_credential_name(name: str) -> bool:
    return bool(_CREDENTIAL_NAME.search(name))


class Scrubber:
    """Removes credentials from JSON-like values (see the module doc)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            found.add(secret)
            found.update(part for part in secret.split(":") if len(part) >= 6)
        # longest first: a whole key goes before its halves
        self._secrets = sorted(found, key=len, reverse=True)

    def value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (SCRUBBED if is_credential_name(str(k)) and value_is_secret(v) else self.value(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, SCRUBBED)
        text = _AUTH_TEXT.sub(lambda m: f"{m.group(1)} {SCRUBBED}", text)
        if text.startswith(("http://", "https://")) and "?" in text:
            text = scrub_url(text)
        return text


def value_is_secret(value: Any) -> bool:
    """A credential-named field holds a secret when it holds a string (not a nested object,
    not a number or flag: ``{"safety_tolerance": 2}`` and ``"max_tokens": 100`` stay)."""
    return isinstance(value, str) and bool(value)


def scrub_url(url: str) -> str:
    """``url`` without its credential-looking query parameters (signed-URL tokens)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query:
        return url
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_credential_name(k)]
    return urlunsplit(parts._replace(query=urlencode(kept)))
