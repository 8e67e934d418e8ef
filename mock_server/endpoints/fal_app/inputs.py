"""Reading ``image_urls`` entries into previews, or into fal's typed 422 errors.

Sources, in the order they are tried:

1. ``data:`` URIs, base64 or percent-encoded (fal-js and fal_client send small files this way);
2. URLs of this mock's own files (uploads and earlier outputs), read from the FileStore;
3. remote ``http(s)`` URLs: fetched only when ``env.allow_fetch`` is set, otherwise drawn
   as a labelled tile (the mock never reaches out to the internet unless asked to).

Failures use fal's documented model-error types (WAN25.md §3.2): ``file_download_error``,
``file_too_large``, ``image_load_error`` (not an image, or a broken one),
``unsupported_image_format`` (an image in a format other than PNG/JPEG/WebP/BMP),
``image_too_small`` / ``image_too_large``, at
``loc ["body","image_urls",<index>]``.  The size limits are Wan's upstream input limits
(WAN25.md §5: 384..5000 px per side, 10 MB per file), applied in both profiles: the
published schema does not state them, but the upstream model rejects such inputs, so a
typed error is the likeliest thing fal returns.

Error ``input`` echoes the URL; one longer than :data:`ECHO_MAX_CHARS` (typically a
``data:`` URI) is cut to its first :data:`ECHO_KEEP_CHARS` characters plus
``"...(<n> chars)"`` so an error body never carries megabytes of base64.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import io
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

from typing import TYPE_CHECKING

from mock_server.core.answers import Answer
from mock_server.core.fal_errors import TYPED_ERROR_MESSAGES, image_too_small_message
from mock_server.core.endpoint import EndpointEnv
from mock_server.endpoints.fal_app.validation import model_error_answer

if TYPE_CHECKING:
    from mock_server.endpoints.fal_app.rendering import InputPreview

# Pillow, httpx and the renderer load on first use, not when the server starts.

__all__ = [
    "ECHO_KEEP_CHARS",
    "ECHO_MAX_CHARS",
    "InputLimits",
    "InputError",
    "MAX_INPUTS_READ",
    "read_inputs",
]

#: Wan reads at most two input images ("only the first 2 will be used", WAN25.md §1.1).
MAX_INPUTS_READ = 2
ECHO_MAX_CHARS = 512
ECHO_KEEP_CHARS = 128
#: Decoders allowed; the upstream accepts JPEG/PNG/BMP/WEBP (WAN25.md §5).
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
_MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class InputLimits:
    """Per-side pixel bounds for input images (WAN25.md §5, upstream DashScope)."""

    min_side: int = 384
    max_side: int = 5000


class InputError(Exception):
    """An input could not be used; ``answer`` is the fal 422 to send."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body.decode("utf-8", "replace"))
        self.answer = answer


def _echo(url: str) -> str:
    if len(url) <= ECHO_MAX_CHARS:
        return url
    return f"{url[:ECHO_KEEP_CHARS]}...({len(url)} chars)"


def _fail(kind: str, msg: str, index: int, url: str, ctx: dict[str, object] | None = None) -> InputError:
    return InputError(model_error_answer(kind, msg, ["body", "image_urls", index], ctx=ctx, input=_echo(url)))


def _download_error(index: int, url: str) -> InputError:
    return _fail("file_download_error", TYPED_ERROR_MESSAGES["file_download_error"], index, url)


def _too_large_file(index: int, url: str, max_size: int) -> InputError:
    return _fail("file_too_large", TYPED_ERROR_MESSAGES["file_too_large"], index, url, {"max_size": max_size})


# -- getting the bytes ------------------------------------------------------------------


def _data_uri_bytes(url: str, index: int, max_bytes: int) -> bytes:
    """Decode ``data:[<type>][;base64],<data>``; malformed ones are a download error."""
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise _download_error(index, url)
    is_base64 = header.lower().endswith(";base64")
    # Refuse before decoding: base64 shrinks by 3/4, percent-encoding by at most 3x.
    estimate = len(payload) * 3 // 4 if is_base64 else len(payload) // 3
    if estimate > max_bytes:
        raise _too_large_file(index, url, max_bytes)
    try:
        if is_base64:
            compact = "".join(payload.split())
            compact += "=" * (-len(compact) % 4)
            altchars = b"-_" if ("-" in compact or "_" in compact) else None
            data = base64.b64decode(compact, altchars=altchars, validate=True)
        else:
            data = _percent_decoded(payload, max_bytes)
    except (binascii.Error, ValueError):
        raise _download_error(index, url) from None
    if len(data) > max_bytes:
        raise _too_large_file(index, url, max_bytes)
    return data


#: Percent-encoded text is decoded this much at a time: ``unquote_to_bytes`` splits its whole
#: input at every ``%``, millions of objects for a large data URI (2.5 GB for 30 MiB).
_PERCENT_CHUNK = 64 * 1024


def _percent_decoded(payload: str, max_bytes: int) -> bytes:
    """``unquote_to_bytes(payload)`` in slices (never cutting a ``%XX``), so memory stays about
    the size of the result; stops as soon as the result is larger than ``max_bytes``."""
    out = bytearray()
    start, end_of_text = 0, len(payload)
    while start < end_of_text:
        end = min(start + _PERCENT_CHUNK, end_of_text)
        cut = payload.rfind("%", max(start, end - 2), end)
        if cut != -1 and end < end_of_text:
            end = cut  # a %XX that would straddle the slice starts the next one
        out += unquote_to_bytes(payload[start:end])
        if len(out) > max_bytes:
            break
        start = end
    return bytes(out)


#: Downloads in progress at once, per server: at most this many buffers of ``fetch_max_bytes``
#: are held (the rest wait their turn), so concurrent fetches cannot grow memory without bound.
FETCHES_AT_ONCE = 8
_fetch_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


def _fetch_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _fetch_slots.get(loop)
    if slots is None:
        slots = _fetch_slots[loop] = asyncio.Semaphore(FETCHES_AT_ONCE)
    return slots


async def _fetch(url: str, index: int, env: EndpointEnv) -> bytes:
    """GET an http(s) URL with a timeout and a streamed size cap; redirects only to http(s).

    Every hop (the URL and each redirect) goes through :mod:`mock_server.endpoints.fal_app.netguard`: its host
    is resolved once, refused when it is (or resolves to) a link-local or cloud-metadata
    address, and the connection is pinned to the address that was checked (no DNS rebinding
    between the check and the connect).  A refused host is a ``file_download_error``.
    """
    import httpx

    from mock_server.endpoints.fal_app import netguard

    max_bytes = env.fetch_max_bytes
    try:
        # fetch_timeout bounds the whole download (a server dripping bytes no longer holds a
        # request for as long as it likes); FETCHES_AT_ONCE bounds the buffers held at once
        async with _fetch_slot(), asyncio.timeout(env.fetch_timeout), \
                httpx.AsyncClient(timeout=env.fetch_timeout, follow_redirects=False) as client:
            target = url
            for _ in range(_MAX_REDIRECTS + 1):
                pinned = await netguard.resolve_pinned(target, env.fetch_timeout)
                extensions = {"sni_hostname": pinned.sni_hostname} if pinned.sni_hostname else {}
                async with client.stream("GET", pinned.url, headers={"host": pinned.host_header},
                                         extensions=extensions) as response:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        target = urljoin(target, location)  # relative to the URL as named, not the IP
                        if urlsplit(target).scheme.lower() not in ("http", "https"):
                            raise _download_error(index, url)
                        continue
                    if not response.is_success:
                        raise _download_error(index, url)
                    declared = response.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                        raise _too_large_file(index, url, max_bytes)
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > max_bytes:
                            raise _too_large_file(index, url, max_bytes)
                    return bytes(data)
            raise _download_error(index, url)  # too many redirects
    except InputError:
        raise
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError, asyncio.TimeoutError, netguard.BlockedAddress):
        raise _download_error(index, url) from None


# -- decoding ---------------------------------------------------------------------------

#: ``ctx.supported_formats`` and message of ``unsupported_image_format`` (WAN25.md §3.2:
#: fal documents this type, ctx ``supported_formats``, msg "Unsupported image format.
#: Supported formats are .jpg, .jpeg, .png, .webp.").  The list is Wan's upstream formats
#: (WAN25.md §5: JPEG/JPG/PNG/BMP/WEBP), as extensions like the documented message; the
#: ctx value being a list is **chosen** (fal's doc names the key, not its shape).
SUPPORTED_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_UNSUPPORTED_MSG = "Unsupported image format. Supported formats are " + ", ".join(SUPPORTED_EXTENSIONS) + "."

# Why a real image in another format is ``unsupported_image_format`` and not
# ``image_load_error``: fal documents the former for exactly this case (a file that *is* an
# image, in a format the model does not take), with ``ctx.supported_formats`` telling the
# caller what to send instead; ``image_load_error`` stays for bytes that are no image at all
# (or a broken PNG/JPEG/WebP/BMP).  The format is recognised from its signature only, so no
# decoder for a refused format ever runs on untrusted bytes.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"GIF87a", "GIF"), (0, b"GIF89a", "GIF"),
    (0, b"II*\x00", "TIFF"), (0, b"MM\x00*", "TIFF"), (0, b"II+\x00", "TIFF"), (0, b"MM\x00+", "TIFF"),
    (0, b"\x00\x00\x01\x00", "ICO"), (0, b"8BPS", "PSD"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"), (0, b"\xffO\xffQ", "JPEG2000"),
    (0, b"\xff\x0a", "JPEGXL"), (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEGXL"),
    (0, b"%PDF-", "PDF"), (0, b"qoif", "QOI"), (0, b"DDS ", "DDS"),
)
_HEIF_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")


def _other_image_format(data: bytes) -> str | None:
    """The name of a recognised image format outside ``ALLOWED_FORMATS``, else None."""
    head = data[:1024]
    for offset, magic, name in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return name
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF/AVIF"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml", b"<!doctype svg", b"<!--")) and b"<svg" in text:
        return "SVG"
    return None


def _unsupported_format(index: int, url: str) -> InputError:
    return InputError(model_error_answer(
        "unsupported_image_format", _UNSUPPORTED_MSG, ["body", "image_urls", index],
        ctx={"supported_formats": list(SUPPORTED_EXTENSIONS)}, input=_echo(url)))



def _decode(data: bytes, index: int, url: str, limits: InputLimits, caption_prefix: str) -> InputPreview:
    """Open, check format and size (before decoding pixels), then build a thumbnail.

    Checking the header's dimensions before ``load()`` is the decompression-bomb guard:
    nothing larger than ``max_side`` squared is ever decoded.
    """
    from PIL import Image, UnidentifiedImageError

    from mock_server.endpoints.fal_app.rendering import InputPreview

    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise _fail("image_too_large", TYPED_ERROR_MESSAGES["image_too_large"], index, url, {"max_height": limits.max_side, "max_width": limits.max_side}) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        if _other_image_format(data) is not None:
            raise _unsupported_format(index, url) from None
        raise _fail("image_load_error", TYPED_ERROR_MESSAGES["image_load_error"], index, url) from None
    with image:
        width, height = image.size
        if width > limits.max_side or height > limits.max_side:
            raise _fail("image_too_large", TYPED_ERROR_MESSAGES["image_too_large"], index, url, {"max_height": limits.max_side, "max_width": limits.max_side})
        if width < limits.min_side or height < limits.min_side:
            raise _fail("image_too_small", image_too_small_message(limits.min_side, limits.min_side), index, url, {"min_height": limits.min_side, "min_width": limits.min_side})
        try:
            image.draft("RGB", (256, 256))  # JPEG: decode at reduced scale, much faster
            return InputPreview.from_image(image, f"{caption_prefix} {width}x{height} {image.format}")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise _fail("image_load_error", TYPED_ERROR_MESSAGES["image_load_error"], index, url) from None


def _decode_data_uri(url: str, index: int, max_bytes: int, limits: InputLimits, caption: str) -> InputPreview:
    return _decode(_data_uri_bytes(url, index, max_bytes), index, url, limits, caption)


async def _read_one(url: str, index: int, env: EndpointEnv, limits: InputLimits) -> InputPreview:
    caption = f"input {index + 1}:"
    if url[:5].lower() == "data:":
        # decoding the URI and the image both off the event loop: a large one takes a while
        return await asyncio.to_thread(_decode_data_uri, url, index, env.fetch_max_bytes, limits, caption)
    own = env.own_file_name(url)
    if own is not None:
        stored = await asyncio.to_thread(env.files.get, own)  # may re-render: off the loop
        if stored is None:
            raise _download_error(index, url)
        if len(stored.data) > env.fetch_max_bytes:
            raise _too_large_file(index, url, env.fetch_max_bytes)
        return await asyncio.to_thread(_decode, stored.data, index, url, limits, caption)
    try:  # a URL urlsplit refuses ("http://[") is no file to download (issue 20.13)
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - raises ValueError for a bad bracketed address
    except ValueError:
        raise _download_error(index, url) from None
    scheme = parts.scheme.lower() if "://" in url else ""
    if scheme not in ("http", "https"):
        raise _download_error(index, url)
    if not env.allow_fetch:
        from mock_server.endpoints.fal_app.rendering import InputPreview

        env.log(f"image_urls[{index}] is a remote URL; not fetched (fetching is off), drawn as a labelled tile")
        return InputPreview.not_fetched(url)
    data = await _fetch(url, index, env)
    return await asyncio.to_thread(_decode, data, index, url, limits, caption)


async def read_inputs(
    urls: Sequence[str], env: EndpointEnv, limits: InputLimits = InputLimits()
) -> list[InputPreview] | Answer:
    """Previews of the first two ``urls`` in order, or the typed 422 of the first bad one.

    Entries beyond :data:`MAX_INPUTS_READ` are never looked at.  Never raises for bad
    input: every failure is an :class:`Answer`.
    """
    previews: list[InputPreview] = []
    for index, url in enumerate(urls[:MAX_INPUTS_READ]):
        try:
            previews.append(await _read_one(url, index, env, limits))
        except InputError as exc:
            return exc.answer
    return previews
