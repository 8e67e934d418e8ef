"""Placeholder media for outputs that are not images: video (MP4), audio (WAV), 3D (GLB).

Pure functions returning bytes, deterministic for equal arguments, with the metadata an output
reports computed from the same arguments by :mod:`.facts` (no encoding needed to plan; equal to
what a decoder reads from the bytes).  The encoders (PyAV, pygltflib) load on first use.

Typical use by an endpoint (the recipe re-renders after the file cache drops the bytes)::

    facts = video_facts(width, height, fps, duration, file_name=name)
    recipe = functools.partial(render_mp4, width, height, fps, duration, seed, tuple(lines))
    data = await asyncio.to_thread(recipe)
    env.files.add_rendered(name, recipe, facts.content_type, data)
    video = facts.sized(data).output(env.file_url(name))
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mock_server.endpoints.fal_app.media.facts import (
    MAX_AUDIO_SECONDS,
    MAX_SIDE,
    MAX_VIDEO_FRAMES,
    MediaFacts,
    VideoPlan,
    audio_facts,
    glb_facts,
    plan_video,
    video_facts,
)

if TYPE_CHECKING:
    from mock_server.endpoints.fal_app.media.audio import render_mp3, render_wav
    from mock_server.endpoints.fal_app.media.model3d import render_glb
    from mock_server.endpoints.fal_app.media.video import render_mp4

__all__ = [
    "MAX_AUDIO_SECONDS", "MAX_SIDE", "MAX_VIDEO_FRAMES", "MediaFacts", "VideoPlan",
    "audio_facts", "glb_facts", "plan_video", "render_glb", "render_mp3", "render_mp4", "render_wav", "video_facts",
]

_RENDERERS = {
    "render_mp4": "mock_server.endpoints.fal_app.media.video",
    "render_wav": "mock_server.endpoints.fal_app.media.audio",
    "render_mp3": "mock_server.endpoints.fal_app.media.audio",
    "render_glb": "mock_server.endpoints.fal_app.media.model3d",
}


def __getattr__(name: str) -> Any:
    """The renderers, imported on first use: they pull in Pillow (and, when called, PyAV or
    pygltflib), which planning an output and start-up do not need."""
    module = _RENDERERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
