"""Placeholder media (issue 16.5): video, audio and 3D files whose bytes decode to exactly the
metadata the output reports, the same bytes for the same arguments, re-drawn after the file
cache drops them.  Decoded with the real readers: PyAV (FFmpeg) for MP4/MP3, ``wave`` for WAV,
``pygltflib`` for GLB."""
from __future__ import annotations

import functools
import io
import json
import struct
import subprocess
import sys
import wave
from fractions import Fraction

import av
import httpx
import pygltflib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mock_server.core.files import RECIPE_OVERHEAD, FileStore, recipe_weight
from mock_server.core.paths import FILES_PREFIX
from mock_server.emulator import FalMock
from mock_server.endpoints.fal_app.media import (
    MediaFacts, audio_facts, glb_facts, render_glb, render_mp3, render_mp4, render_wav, video_facts,
)
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings

LINES = ("a lighthouse in a storm, waves crashing on the rocks", "fal-ai/some/text-to-video")


def decoded_video(data: bytes) -> dict:
    """What FFmpeg reads from an MP4: the stream's numbers, and the frames decoded one by one."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_image() for frame in container.decode(stream)]
        return {
            "codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.width, "height": stream.height, "fps": float(stream.average_rate),
            "num_frames": len(frames), "stream_frames": stream.frames,
            "duration": float(stream.duration * stream.time_base), "container_duration": container.duration / 1e6,
            "frames": frames,
        }


def assert_video_matches_facts(data: bytes, facts: MediaFacts) -> dict:
    got = decoded_video(data)
    assert (got["codec"], got["pix_fmt"]) == ("h264", "yuv420p")
    assert (got["width"], got["height"], got["fps"]) == (facts.width, facts.height, facts.fps)
    assert got["num_frames"] == got["stream_frames"] == facts.num_frames
    assert got["duration"] == pytest.approx(facts.duration, abs=1e-9)
    assert got["container_duration"] == pytest.approx(facts.duration, abs=1e-6)  # microseconds
    assert facts.sized(data).file_size == len(data)
    return got


# -- video ------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    (1280, 720, 24, 5), (848, 480, 16, 5.0625), (720, 1280, 30, 2), (101, 63, 25, 1), (640, 360, 30000 / 1001, 3.2),
], ids=str)
def test_video_decodes_to_exactly_the_reported_size_rate_and_length(args) -> None:
    facts = video_facts(*args)
    got = assert_video_matches_facts(render_mp4(*args, seed=7, lines=LINES), facts)
    assert got["num_frames"] == round(Fraction(facts.fps).limit_denominator(1001) * Fraction(args[3]))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    width=st.integers(2, 96), height=st.integers(2, 96),
    fps=st.sampled_from([8, 12.5, 16, 24, 25, 29.97, 30000 / 1001, 60]),
    duration=st.floats(0.01, 1.5),
)
def test_any_small_video_decodes_to_its_facts(width, height, fps, duration) -> None:
    assert_video_matches_facts(render_mp4(width, height, fps, duration, seed=1), video_facts(width, height, fps, duration))


def test_odd_sides_are_rounded_down_to_even_in_the_file_and_the_facts() -> None:
    facts = video_facts(101, 63, 25, 1)
    assert (facts.width, facts.height) == (100, 62)


def test_video_is_the_same_bytes_for_the_same_arguments_and_differs_by_seed() -> None:
    first = render_mp4(320, 240, 24, 1, seed=5, lines=LINES)
    assert render_mp4(320, 240, 24, 1, seed=5, lines=LINES) == first
    assert render_mp4(320, 240, 24, 1, seed=6, lines=LINES) != first


def test_video_bytes_do_not_depend_on_how_many_cores_the_process_may_use() -> None:
    # x264 picks its thread count from the CPUs it may run on unless told; the bytes depend on it
    code = ("import os, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from mock_server.endpoints.fal_app.media import render_mp4; "
            "sys.stdout.buffer.write(render_mp4(640, 360, 24, 1, 5, ('a storm',)))")
    one_core = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=120).stdout
    assert one_core == render_mp4(640, 360, 24, 1, 5, ("a storm",))


def test_a_single_string_is_one_line() -> None:
    assert render_mp4(64, 64, 24, 0.1, 1, "one line") == render_mp4(64, 64, 24, 0.1, 1, ("one line",))


def test_the_index_comes_first_so_a_browser_plays_while_loading() -> None:
    data = render_mp4(320, 240, 24, 1, seed=5)
    top_level = []
    at = 0
    while at < len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        top_level.append(kind)
        at += size
    assert top_level.index(b"moov") < top_level.index(b"mdat")


def test_frames_change_over_time_and_show_the_seed_colours() -> None:
    got = decoded_video(render_mp4(640, 360, 24, 1, seed=3, lines=LINES))
    first, last = got["frames"][0], got["frames"][-1]
    assert first.tobytes() != last.tobytes()  # the time line moves
    # the corner is the seed's background stripe colour (compressed: within a few levels)
    from mock_server.endpoints.fal_app.rendering import palette_rgb

    corner = first.getpixel((1, 1))
    stripes = palette_rgb(3)[222:224]
    assert min(sum(abs(a - b) for a, b in zip(corner, c)) for c in stripes) < 24


@pytest.mark.parametrize("bad", [(0, 720, 24, 5), (1280, 5000, 24, 5), (1280, 720, 0, 5), (1280, 720, 24, 0),
                                 (1280, 720, 24, 10_000)])
def test_out_of_range_video_is_refused_before_any_encoding(bad) -> None:
    with pytest.raises(ValueError):
        video_facts(*bad)
    with pytest.raises(ValueError):
        render_mp4(*bad, seed=1)


# -- audio ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("duration", "rate", "channels"), [(5, 44100, 1), (3.3333, 44100, 2), (0.01, 8000, 1), (2.5, 48000, 2)])
def test_wav_is_exact_to_the_sample_and_its_size_is_known_up_front(duration, rate, channels) -> None:
    facts = audio_facts(duration, rate, channels)
    data = render_wav(duration, seed=4, sample_rate=rate, channels=channels)
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (rate, channels, 2)
        assert wav.getnframes() / wav.getframerate() == facts.duration
        assert wav.getnframes() == round(duration * rate)
    assert (facts.content_type, facts.file_size) == ("audio/wav", len(data))
    assert render_wav(duration, seed=4, sample_rate=rate, channels=channels) == data


def test_wav_is_a_melody_not_silence_and_differs_by_seed() -> None:
    data = render_wav(1, seed=1)
    assert max(data[44:]) > 0 and render_wav(1, seed=2) != data


@pytest.mark.parametrize(("duration", "rate", "channels"), [(5, 44100, 1), (3.3333, 44100, 2), (0.5, 22050, 1)])
def test_mp3_decodes_to_exactly_the_reported_samples(duration, rate, channels) -> None:
    facts = audio_facts(duration, rate, channels, audio_format="mp3")
    data = render_mp3(duration, seed=4, sample_rate=rate, channels=channels)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        assert (stream.codec_context.name, stream.sample_rate, stream.channels) == ("mp3float", rate, channels)
    assert samples / rate == facts.duration
    assert (facts.content_type, facts.file_name) == ("audio/mpeg", "output.mp3")
    assert render_mp3(duration, seed=4, sample_rate=rate, channels=channels) == data


@pytest.mark.parametrize("bad", [dict(duration=0), dict(duration=5, sample_rate=1000), dict(duration=5, channels=3),
                                 dict(duration=5, sample_rate=96000, audio_format="mp3"), dict(duration=5, audio_format="ogg")])
def test_out_of_range_audio_is_refused(bad) -> None:
    with pytest.raises(ValueError):
        audio_facts(**bad)


# -- 3D ---------------------------------------------------------------------------------------
def test_glb_has_the_magic_and_length_and_parses_as_a_coloured_cube() -> None:
    data = render_glb(9, label="a wooden chair")
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    gltf = pygltflib.GLTF2.load_from_bytes(data)
    positions = gltf.accessors[gltf.meshes[0].primitives[0].attributes.POSITION]
    assert positions.count == 24 and gltf.accessors[gltf.meshes[0].primitives[0].indices].count == 36
    assert len(gltf.binary_blob()) == gltf.buffers[0].byteLength
    assert gltf.nodes[0].name == "a wooden chair"
    colour = gltf.materials[0].pbrMetallicRoughness.baseColorFactor
    other = pygltflib.GLTF2.load_from_bytes(render_glb(10)).materials[0].pbrMetallicRoughness.baseColorFactor
    assert colour != other
    assert render_glb(9, label="a wooden chair") == data
    assert glb_facts().sized(data).output("u") == {
        "url": "u", "content_type": "model/gltf-binary", "file_name": "model.glb", "file_size": len(data)}


# -- facts ------------------------------------------------------------------------------------
def test_facts_output_uses_fal_field_names_and_leaves_out_what_is_unknown() -> None:
    video = video_facts(1280, 720, 24, 5, file_name="v.mp4").sized(b"x" * 10).output("https://h/v.mp4")
    assert video == {"url": "https://h/v.mp4", "content_type": "video/mp4", "file_name": "v.mp4", "file_size": 10,
                     "width": 1280, "height": 720, "fps": 24.0, "duration": 5.0, "num_frames": 120}
    audio = audio_facts(2, 16000, 1).output("u")
    assert audio == {"url": "u", "content_type": "audio/wav", "file_name": "output.wav", "file_size": 64044,
                     "duration": 2.0, "sample_rate": 16000, "channels": 1}
    json.dumps(video), json.dumps(audio)


# -- caching ----------------------------------------------------------------------------------
def test_a_video_recipe_weighs_its_text_not_its_video() -> None:
    recipe = functools.partial(render_mp4, 1280, 720, 24, 5, 1, ("p" * 5000, "line"))
    assert recipe_weight(recipe) == RECIPE_OVERHEAD + 5004


def test_a_video_url_serves_the_same_bytes_after_the_cache_dropped_them() -> None:
    mock = FalMock(Settings())
    recipes = {name: functools.partial(render_mp4, 320, 240, 24, 2, seed, LINES)
               for seed, name in enumerate(["first.mp4", "second.mp4"])}
    videos = {name: recipe() for name, recipe in recipes.items()}
    mock.files.cache_bytes = max(map(len, videos.values())) + 100  # room for one video, not two
    server = BackgroundServer(mock)
    server.start()
    try:
        for name, recipe in recipes.items():
            mock.files.add_rendered(name, recipe, "video/mp4", videos[name])
        with httpx.Client(base_url=server.url) as http:
            assert mock.files.stats()["cached_files"] == 1 and mock.files.renders == 0
            first = http.get(FILES_PREFIX + "first.mp4")  # dropped: drawn again
            assert mock.files.renders == 1
            http.get(FILES_PREFIX + "second.mp4")  # drops first again
            again = http.get(FILES_PREFIX + "first.mp4")
            assert mock.files.renders == 3
        assert first.status_code == again.status_code == 200
        assert first.headers["content-type"] == "video/mp4"
        assert first.content == again.content == videos["first.mp4"]
        assert_video_matches_facts(again.content, video_facts(320, 240, 24, 2))
    finally:
        server.stop()
