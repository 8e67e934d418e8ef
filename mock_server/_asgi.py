"""The raw-ASGI helpers the legacy feature modules still use; the request type now lives in
:mod:`mock_server.protocol.request` (this module goes with the old face)."""
from __future__ import annotations

from mock_server.protocol.request import JSON, BodyTooLarge, HttpRequest, Receive, Scope, Send, send_bytes

__all__ = ["JSON", "BodyTooLarge", "HttpRequest", "Receive", "Scope", "Send", "send_bytes"]
