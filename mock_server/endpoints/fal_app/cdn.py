"""How fal's CDN names the files an app outputs.

Recorded output URLs (2025-2026, many apps) end in ``<21-char nanoid>_<8 chars>.<ext>``, e.g.
``IXN1B_4MHnozvltxEHfvX_BwTMO9xM.png``: nanoid's URL-safe alphabet (``A-Za-z0-9_-``).  The
mock derives the name from a key (request id and output index), so the same request always
names, and re-renders, the same file.
"""
from __future__ import annotations

import base64
import hashlib


def cdn_file_name(key: str, extension: str) -> str:
    """``<21 chars>_<8 chars>.<extension>`` from the URL-safe base64 of ``sha256(key)``."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).decode()
    return f"{digest[:21]}_{digest[21:29]}.{extension}"
