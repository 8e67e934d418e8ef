"""Placeholder sounds: a short seed-chosen melody, as WAV (stdlib ``wave``) or MP3 (PyAV's LAME).

The tone is a triangle wave made with integer arithmetic only (no ``math.sin``, whose last
bit may differ between C libraries), one note per quarter second from a pentatonic scale the
seed picks, with a short rest after each note so a listener hears the notes.  One period of
each note is computed and repeated, so a minute of sound costs about as much as a second.

The length is exact to the sample: ``facts.sample_count`` (the same numbers the output reports).
An MP3 carries LAME's gapless header (encoder delay and padding), so decoders (FFmpeg, browsers)
trim it back to exactly those samples.
"""
from __future__ import annotations

import hashlib
import io
import sys
import wave
from array import array

from mock_server.endpoints.fal_app.media.facts import audio_facts, sample_count

__all__ = ["render_mp3", "render_wav"]

#: Samples per MPEG-1 Layer III frame: what LAME takes at a time.
_MP3_FRAME = 1152

#: Notes per second, and the part of each note that is sound (the rest is a rest).
_NOTES_PER_SECOND = 4
_SOUNDING = 0.8
#: Peak amplitude of the 16-bit samples (about a third of full scale: not loud).
_PEAK = 10_000
#: A major pentatonic scale over two octaves from A3 (Hz).
_SCALE = (220.0, 247.5, 275.0, 330.0, 371.25, 440.0, 495.0, 550.0, 660.0, 742.5)


def _period(frequency: float, sample_rate: int) -> array:
    """One period of a triangle wave (whole samples, so repetition is seamless)."""
    n = max(2, round(sample_rate / frequency))
    half = n / 2
    return array("h", (int(_PEAK * (4 * abs(i - half) / n - 1)) for i in range(n)))


def _samples(samples: int, sample_rate: int, seed: int) -> array:
    """``samples`` mono samples of ``seed``'s melody."""
    digest = hashlib.sha256(f"audio:{seed}".encode()).digest()
    note_len = sample_rate // _NOTES_PER_SECOND
    sound_len = int(note_len * _SOUNDING)
    rest = array("h", bytes(2 * (note_len - sound_len)))
    periods: dict[int, array] = {}
    out = array("h")
    note = 0
    while len(out) < samples:
        pitch = digest[note % len(digest)] % len(_SCALE)
        period = periods.get(pitch)
        if period is None:
            period = periods[pitch] = _period(_SCALE[pitch], sample_rate)
        tone = period * (sound_len // len(period) + 1)
        out.extend(tone[:sound_len])
        out.extend(rest)
        note += 1
    del out[samples:]
    return out


def render_wav(duration: float, seed: int, sample_rate: int = 44100, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV of ``duration`` seconds (rounded to the sample), ``channels`` 1 or 2.

    Raises ValueError out of range (see ``facts.sample_count``).
    """
    samples = sample_count(duration, sample_rate, channels)
    mono = _samples(samples, int(sample_rate), seed)
    if channels == 2:
        stereo = array("h", bytes(4 * samples))
        stereo[0::2] = mono
        stereo[1::2] = mono
        mono = stereo
    if sys.byteorder == "big":  # WAV is little-endian
        mono.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(mono.tobytes())
    return out.getvalue()


def render_mp3(duration: float, seed: int, sample_rate: int = 44100, channels: int = 1) -> bytes:
    """The same melody as :func:`render_wav`, as an MP3 (LAME through PyAV, its default bit
    rate); ``sample_rate`` one of MPEG's (``facts.MP3_SAMPLE_RATES``).  Raises ValueError out of
    range."""
    import av  # PyAV (bundled FFmpeg and LAME): loaded on first use

    audio_facts(duration, sample_rate, channels, audio_format="mp3")  # the range checks
    rate = int(sample_rate)
    samples = sample_count(duration, rate, channels)
    mono = _samples(samples, rate, seed)
    layout = "mono" if channels == 1 else "stereo"
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate)
        stream.layout = layout
        stream.format = "s16p"
        for start in range(0, samples, _MP3_FRAME):
            chunk = mono[start:start + _MP3_FRAME].tobytes()
            frame = av.AudioFrame(format="s16p", layout=layout, samples=len(chunk) // 2)
            for plane in frame.planes:  # planar: the same samples on each channel
                plane.update(chunk)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()
