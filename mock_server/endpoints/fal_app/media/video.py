"""Placeholder videos: a real, playable H.264 MP4 drawn frame by frame.

Each frame is the seed-coloured card of the image placeholders (``rendering.draw_card``: the
seed, the size and rate, the prompt lines) with a time line at its bottom that changes every
frame: the time code, the frame number and a progress bar with a marker, so a player shows
motion and a person can see where they are.

Speed (targets: 5 s 720p <= 1 s, 8 s 1080p <= 2 s; ``bench/bench_media.py``): the card is drawn
once, scaled to the output size and written into one frame's Y/U/V planes once; per frame only
the band is drawn (on the small canvas), scaled and spliced into those planes, rows at a time.  The planes
are built here from the palette (BT.709, limited range) rather than converted by swscale, so
no CPU-specific conversion path can change a pixel.  x264's ``ultrafast`` preset encodes an
almost still picture at a few ms per 1080p frame.

Determinism: the bytes are a pure function of the arguments for one PyAV build (it bundles
FFmpeg and x264).  x264 output depends on its thread count, so that is pinned
(:data:`_THREADS`) instead of following the machine's cores.

The MP4 is written with ``movflags=faststart`` (index first, so a browser plays it while it
loads).  FFmpeg's faststart pass re-opens the output by name to move the index, which a
Python file object cannot do, so the file is written to a temporary file and read back.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from fractions import Fraction

from PIL import Image, ImageDraw

from mock_server.endpoints.fal_app import rendering
from mock_server.endpoints.fal_app.media.facts import VideoPlan, plan_video

__all__ = ["render_mp4"]

#: x264 threads: fixed, since the bytes depend on it (two cores is the smallest common machine).
_THREADS = 2
#: x264 options: fastest preset; quality is irrelevant for a placeholder, size is small anyway.
_X264 = {"preset": "ultrafast", "crf": "30"}
#: A key frame every this many seconds (players seek to key frames).
_KEY_SECONDS = 2
#: Text lines of room the time line takes at the bottom of the card.
_BAND_LINES = 2


def _yuv_tables(seed: int) -> tuple[bytes, bytes, bytes]:
    """256-entry ``bytes.translate`` tables: palette index -> Y, Cb, Cr (BT.709, limited range)."""
    ys, us, vs = bytearray(256), bytearray(256), bytearray(256)
    for i, (r, g, b) in enumerate(rendering.palette_rgb(seed)):
        y = 0.2126 * r + 0.7152 * g + 0.0722 * b
        ys[i] = round(16 + 219 * y / 255)
        us[i] = round(128 + 224 * (b - y) / (255 * 1.8556))
        vs[i] = round(128 + 224 * (r - y) / (255 * 1.5748))
    return bytes(ys), bytes(us), bytes(vs)


def _plane(image: Image.Image, table: bytes, stride: int) -> bytes:
    """``image`` (palette) as one plane of ``stride`` bytes per row, through ``table``."""
    data = image.tobytes().translate(table)
    if stride == image.width:
        return data
    pad = bytes(stride - image.width)
    w = image.width
    return b"".join(data[y * w:(y + 1) * w] + pad for y in range(image.height))


def _splice(plane: memoryview, stride: int, at: tuple[int, int], patch: Image.Image, table: bytes) -> None:
    """Write ``patch`` (palette) into ``plane`` at ``at`` (pixels), row by row."""
    data = patch.tobytes().translate(table)
    w = patch.width
    x, y = at
    for row in range(patch.height):
        start = (y + row) * stride + x
        plane[start:start + w] = data[row * w:(row + 1) * w]


class _TimeLine:
    """The band of one video: draws frame ``i``'s time code and progress on the small canvas."""

    def __init__(self, canvas: Image.Image, box: tuple[int, int, int, int], plan: VideoPlan) -> None:
        self.size = (box[2] - box[0], box[3] - box[1])
        self.palette = canvas.getpalette()
        self.plan = plan

    def draw(self, index: int) -> Image.Image:
        band = Image.new("P", self.size, rendering.PANEL)
        band.putpalette(self.palette or [])
        plan = self.plan
        t = Fraction(index) / plan.rate
        rendering.draw_text(band, (0, 0), f"{_clock(t)} / {_clock(Fraction(plan.frames) / plan.rate)}"
                                          f"  frame {index + 1}/{plan.frames}")
        w, h = self.size
        top, bottom = rendering.LINE_H + 1, min(h - 1, 2 * rendering.LINE_H - 2)
        draw = ImageDraw.Draw(band)
        draw.rectangle((0, top, w - 1, bottom), fill=rendering.TILE)
        done = (w - 1) * (index + 1) // plan.frames
        draw.rectangle((0, top, done, bottom), fill=rendering.ACCENT)
        marker = max(2, bottom - top)
        left = min(max(0, done - marker // 2), max(0, w - marker))
        draw.rectangle((left, top - 1, left + marker, bottom + 1), fill=rendering.WHITE, outline=rendering.INK)
        return band


def _clock(t: Fraction) -> str:
    """``mm:ss.mmm`` of ``t`` seconds."""
    ms = int(t * 1000)
    return f"{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def render_mp4(width: int, height: int, fps: float, duration: float, seed: int, lines: Sequence[str] = ()) -> bytes:
    """An H.264 (yuv420p) MP4 of ``round(fps * duration)`` frames showing ``lines``.

    Sizes are rounded down to even (see :func:`facts.plan_video`, whose numbers a decoder
    reads back: width, height, fps, frame count, duration).  Raises ValueError out of range.
    """
    import av  # PyAV (bundled FFmpeg): loaded on the first video, not at start-up

    plan = plan_video(width, height, fps, duration)
    if isinstance(lines, str):  # one line given as a string, not its characters as lines
        lines = (lines,)
    w, h = plan.width, plan.height
    rate = plan.rate
    caption = f"{w}x{h} - {float(rate):g} fps - {plan.duration:g} s - video"
    card = rendering.draw_card(seed, w, h, caption, tuple(lines), band_lines=_BAND_LINES)
    canvas = card.canvas
    tables = _yuv_tables(seed)
    strides = [p.line_size for p in av.VideoFrame(w, h, "yuv420p").planes]
    sizes = [(w, h), (w // 2, h // 2), (w // 2, h // 2)]
    planes = [
        _plane(canvas.resize(size, Image.Resampling.NEAREST), table, stride)
        for size, table, stride in zip(sizes, tables, strides)
    ]
    band = None
    if card.band is not None:
        bx0, by0, bx1, by1 = card.band
        lw, lh = canvas.size
        # The band's box at full size, on even pixels so the chroma planes line up.
        x0, y0 = bx0 * w // lw & ~1, by0 * h // lh & ~1
        x1, y1 = max(x0 + 2, bx1 * w // lw & ~1), max(y0 + 2, by1 * h // lh & ~1)
        band = (_TimeLine(canvas, card.band, plan), (x0, y0), (x1 - x0, y1 - y0))

    fd, path = tempfile.mkstemp(prefix="fal-mock-", suffix=".mp4")
    os.close(fd)
    try:
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            ctx = stream.codec_context
            ctx.thread_count = _THREADS
            ctx.gop_size = max(1, round(rate * _KEY_SECONDS))
            ctx.color_range = 1  # limited ("tv") range, as the planes are drawn
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1  # BT.709
            ctx.options = dict(_X264)
            # One frame, its planes written once; per frame only the band changes, in place.
            # Safe: x264 copies the picture when it is handed over (libx264.c, X264_frame),
            # and PyAV's encode() has taken every packet (so every reference) before it returns.
            frame = av.VideoFrame(w, h, "yuv420p")
            views = [memoryview(plane) for plane in frame.planes]
            for view, data in zip(views, planes):
                view[:] = data
            for index in range(plan.frames):
                if band is not None:
                    timeline, (x, y), (bw, bh) = band
                    small = timeline.draw(index)
                    full = small.resize((bw, bh), Image.Resampling.NEAREST)
                    half = small.resize((bw // 2, bh // 2), Image.Resampling.NEAREST)
                    _splice(views[0], strides[0], (x, y), full, tables[0])
                    _splice(views[1], strides[1], (x // 2, y // 2), half, tables[1])
                    _splice(views[2], strides[2], (x // 2, y // 2), half, tables[2])
                frame.pts = index
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)
