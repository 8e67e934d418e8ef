"""Namespaces: one mock shared by several test processes or a team, each caller seeing only
its own requests, results, journal, fault rules and uploads (docs/namespaces.md).

The one home of the rule that says which namespace a call belongs to; the queue, the journal,
the fault plan and the file store keep the name it gives, and the fast lane and the web face
both ask it (through :attr:`mock_server.protocol.request.HttpRequest.namespace`).

*Chosen*: the ``x-fal-mock-namespace`` header wins over the key, so callers sharing one key (a
team's, or a CI secret) can still be kept apart; without the header the API key's id names the
namespace (``Authorization: Key ci-job-17:secret`` -> ``ci-job-17``: the official clients send
only the key, so that is the way to choose one without code); without either (no key, a bearer
token, a key without ``id:``) the call is in :data:`DEFAULT`.  A name is any non-empty text
(surrounding spaces dropped) of at most :data:`MAX_LENGTH` characters; a longer header is cut.
"""
from __future__ import annotations

from typing import Iterable

DEFAULT = "default"
#: The header that chooses a namespace (wins over the key's id).
HEADER = b"x-fal-mock-namespace"
MAX_LENGTH = 128
#: The control API's name for every namespace at once (``?namespace=*``): an action without a
#: namespace is refused, so acting on everyone's state is always said out loud.
EVERY = "*"
_AUTHORIZATION = b"authorization"
_KEY_IDS_KEPT = 1024
_key_ids: dict[bytes, str] = {}  # Authorization value -> namespace: a client sends the same one every call


def namespace_of(raw_headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The namespace of a call with these raw ASGI headers (names lower-case)."""
    authorization = None
    for name, value in raw_headers:
        if name == HEADER:
            chosen = value.strip()
            if chosen:
                return chosen[:MAX_LENGTH].decode("latin-1")
        elif name == _AUTHORIZATION and authorization is None:
            authorization = value
    if authorization is None:
        return DEFAULT
    found = _key_ids.get(authorization)
    if found is None:
        found = key_namespace(authorization)
        if len(_key_ids) < _KEY_IDS_KEPT:
            _key_ids[authorization] = found
    return found


def key_namespace(authorization: bytes) -> str:
    """The namespace an ``Authorization`` value alone chooses: ``Key <id>:<secret>`` -> ``<id>``."""
    scheme, _, credential = authorization.strip().partition(b" ")
    if scheme.lower() != b"key":
        return DEFAULT  # a bearer JWT (``fal auth login``) names no key id
    key_id, colon, _ = credential.strip().partition(b":")
    key_id = key_id.strip()
    if not colon or not key_id:
        return DEFAULT
    return key_id[:MAX_LENGTH].decode("latin-1")


def scoped(namespace: str | None, owner: str) -> bool:
    """Whether something owned by ``owner`` is seen from ``namespace`` (None: every namespace)."""
    return namespace is None or namespace == owner
