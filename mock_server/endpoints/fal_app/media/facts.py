"""What an output reports about a placeholder file, computed from the renderer's arguments.

One home for the numbers a renderer and the output JSON share: a video's even size, its
frame rate as an exact fraction, its frame count and true duration; a sound's sample count.
The renderers (``video``, ``audio``, ``model3d``) call the same functions, so the metadata
equals what a decoder reads from the bytes (tests/test_media.py decodes them to check).
Nothing here imports an encoder: planning an output costs nothing.

Field names are fal's (``@fal-ai/client`` ``libs/client/src/types/endpoints.ts``, fal-js
commit 381105e): ``VideoFile {url, content_type, file_name, file_size, width, height, fps,
duration, num_frames}``, ``AudioFile {url, content_type, file_name, file_size, duration,
sample_rate, channels, bitrate}``, ``File {url, content_type, file_name, file_size}`` (what a
3D endpoint's ``model_glb`` is).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = [
    "MAX_SIDE", "MAX_VIDEO_FRAMES", "MAX_AUDIO_SECONDS", "MP3_SAMPLE_RATES", "MediaFacts", "VideoPlan",
    "audio_facts", "glb_facts", "plan_video", "sample_count", "video_facts",
]

#: Largest video side drawn (4K UHD, either orientation); larger asks are refused (ValueError).
MAX_SIDE = 3840
#: Most frames one video holds (a minute at 60 fps): bounds the encode time of one request.
MAX_VIDEO_FRAMES = 3600
#: Longest sound drawn, in seconds.
MAX_AUDIO_SECONDS = 600
#: Frame rates are kept as fractions with a denominator up to 1001 (NTSC's 30000/1001).
_FPS_DENOMINATOR = 1001
_WAV_HEADER = 44  # RIFF + fmt (16 bytes, PCM) + data chunk headers, as ``wave`` writes them
_SAMPLE_BYTES = 2  # 16-bit PCM


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """What an output says about one file (fal's field names); None = not reported.

    ``file_size`` is known before rendering only where the format fixes it (WAV); for MP4 and
    GLB take it from the bytes: ``facts.sized(data)``.
    """

    content_type: str
    file_name: str
    file_size: int | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration: float | None = None
    num_frames: int | None = None
    sample_rate: int | None = None
    channels: int | None = None

    def sized(self, data: bytes) -> MediaFacts:
        """The same facts with ``file_size`` taken from the rendered ``data``."""
        return dataclasses.replace(self, file_size=len(data))

    def output(self, url: str) -> dict[str, Any]:
        """The media object of an output: ``{"url": url, ...}`` with every known field."""
        out: dict[str, Any] = {"url": url}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                out[field.name] = value
        return out


@dataclass(frozen=True, slots=True)
class VideoPlan:
    """The exact numbers of a video: even ``width``/``height``, ``rate`` (frames per second,
    a fraction), ``frames`` (at least one) and the true duration ``frames / rate``."""

    width: int
    height: int
    rate: Fraction
    frames: int

    @property
    def duration(self) -> float:
        return float(self.frames / self.rate)


def _even(side: int, what: str) -> int:
    side = int(side)
    if side < 2 or side > MAX_SIDE:
        raise ValueError(f"video {what} must be 2..{MAX_SIDE}, got {side}")
    return side - side % 2  # H.264 in yuv420p needs even sides


def plan_video(width: int, height: int, fps: float, duration: float) -> VideoPlan:
    """The numbers a video of these arguments has: sides rounded down to even, ``fps`` as the
    nearest fraction with a denominator up to 1001 (``24`` -> 24, ``29.97`` -> 2997/100,
    ``30000/1001`` as a float -> 30000/1001), ``round(fps * duration)`` frames (at least one).

    Raises ValueError for sizes, rates or lengths out of range (the caller answers a 4xx).
    """
    rate = Fraction(fps).limit_denominator(_FPS_DENOMINATOR) if not isinstance(fps, Fraction) else fps
    if not 1 <= rate <= 120:
        raise ValueError(f"video fps must be 1..120, got {fps}")
    if not duration > 0:
        raise ValueError(f"video duration must be positive, got {duration}")
    frames = max(1, round(rate * Fraction(duration)))
    if frames > MAX_VIDEO_FRAMES:
        raise ValueError(f"video of {frames} frames is longer than the {MAX_VIDEO_FRAMES} drawn")
    return VideoPlan(_even(width, "width"), _even(height, "height"), rate, frames)


def video_facts(width: int, height: int, fps: float, duration: float, file_name: str = "output.mp4") -> MediaFacts:
    """What :func:`render_mp4` with these arguments gives (without ``file_size``)."""
    plan = plan_video(width, height, fps, duration)
    return MediaFacts(
        "video/mp4", file_name, width=plan.width, height=plan.height, fps=float(plan.rate),
        duration=plan.duration, num_frames=plan.frames,
    )


def sample_count(duration: float, sample_rate: int, channels: int) -> int:
    """Samples per channel of a sound of ``duration`` seconds (at least one); checks ranges."""
    if not 8000 <= int(sample_rate) <= 192_000:
        raise ValueError(f"sample_rate must be 8000..192000, got {sample_rate}")
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    if not 0 < duration <= MAX_AUDIO_SECONDS:
        raise ValueError(f"audio duration must be in (0, {MAX_AUDIO_SECONDS}], got {duration}")
    return max(1, round(Fraction(duration) * int(sample_rate)))


#: MPEG audio's sample rates (what an MP3 can hold).
MP3_SAMPLE_RATES = frozenset((8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000))
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def audio_facts(
    duration: float, sample_rate: int = 44100, channels: int = 1, file_name: str | None = None,
    *, audio_format: str = "wav",
) -> MediaFacts:
    """What :func:`render_wav` (``audio_format="wav"``, a 16-bit PCM WAV whose size is known up
    front) or :func:`render_mp3` (``"mp3"``; size from the bytes) gives; the duration is exact
    to the sample (the MP3's gapless header tells decoders its true length)."""
    content_type = _AUDIO_TYPES.get(audio_format)
    if content_type is None:
        raise ValueError(f"audio format must be one of {sorted(_AUDIO_TYPES)}, got {audio_format!r}")
    if audio_format == "mp3" and int(sample_rate) not in MP3_SAMPLE_RATES:
        raise ValueError(f"an MP3's sample_rate must be one of {sorted(MP3_SAMPLE_RATES)}, got {sample_rate}")
    samples = sample_count(duration, sample_rate, channels)
    size = _WAV_HEADER + samples * channels * _SAMPLE_BYTES if audio_format == "wav" else None
    return MediaFacts(
        content_type, file_name or f"output.{audio_format}", file_size=size,
        duration=samples / int(sample_rate), sample_rate=int(sample_rate), channels=channels,
    )


def glb_facts(file_name: str = "model.glb") -> MediaFacts:
    """What :func:`render_glb` gives (a binary glTF; ``file_size`` from the bytes)."""
    return MediaFacts("model/gltf-binary", file_name)
