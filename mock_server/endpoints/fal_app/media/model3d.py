"""Placeholder 3D models: a binary glTF (GLB) holding one cube in the seed's colour.

Written with ``pygltflib`` (pure Python; chosen over ``trimesh``, which needs NumPy and is a
much larger install, for what is 24 vertices): the cube has a flat normal per face, so any
viewer lights it correctly, and a PBR material whose base colour is the seed's card colour.
``label`` (e.g. the prompt) is the node's name and the scene's ``extras``.
"""
from __future__ import annotations

import sys
from array import array

from mock_server.endpoints.fal_app import rendering

__all__ = ["render_glb"]

#: Longest label kept in the file (a prompt can be long; a name needs no more).
_LABEL_MAX = 500
# The six faces: (normal, two in-plane axes); each face is a quad of four corners.
_FACES = (
    ((1, 0, 0), (0, 1, 0), (0, 0, 1)), ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
    ((0, 1, 0), (0, 0, 1), (1, 0, 0)), ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    ((0, 0, 1), (1, 0, 0), (0, 1, 0)), ((0, 0, -1), (0, 1, 0), (1, 0, 0)),
)


def _cube() -> tuple[bytes, bytes, bytes]:
    """Positions, normals (float32 xyz) and indices (uint16) of a unit cube at the origin."""
    positions, normals, indices = array("f"), array("f"), array("H")
    for n, u, v in _FACES:
        base = len(positions) // 3
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):  # counter-clockwise seen from outside
            positions.extend(0.5 * (n[k] + su * u[k] + sv * v[k]) for k in range(3))
            normals.extend(float(c) for c in n)
        indices.extend((base, base + 1, base + 2, base, base + 2, base + 3))
    if sys.byteorder == "big":  # glTF buffers are little-endian
        for a in (positions, normals, indices):
            a.byteswap()
    return positions.tobytes(), normals.tobytes(), indices.tobytes()


def _linear(channel: int) -> float:
    """An sRGB byte as the linear value glTF's ``baseColorFactor`` holds (rounded: stable JSON)."""
    c = channel / 255
    return round(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4, 4)


def render_glb(seed: int, label: str = "") -> bytes:
    """A GLB of a cube coloured from ``seed``; deterministic for equal arguments."""
    import pygltflib as g  # loaded on the first 3D output, not at start-up

    positions, normals, indices = _cube()
    blob = positions + normals + indices
    label = label[:_LABEL_MAX]
    r, gr, b = rendering.seed_colour(seed)
    gltf = g.GLTF2(
        asset=g.Asset(version="2.0", generator="fal-mock placeholder"),
        scene=0,
        scenes=[g.Scene(nodes=[0], extras={"seed": seed, "label": label})],
        nodes=[g.Node(mesh=0, name=label or f"seed {seed}")],
        meshes=[g.Mesh(primitives=[g.Primitive(
            attributes=g.Attributes(POSITION=0, NORMAL=1), indices=2, material=0,
        )])],
        materials=[g.Material(
            name=f"seed {seed}",
            pbrMetallicRoughness=g.PbrMetallicRoughness(
                baseColorFactor=[_linear(r), _linear(gr), _linear(b), 1.0], metallicFactor=0.0, roughnessFactor=0.8,
            ),
        )],
        accessors=[
            g.Accessor(bufferView=0, componentType=g.FLOAT, count=24, type=g.VEC3,
                       min=[-0.5, -0.5, -0.5], max=[0.5, 0.5, 0.5]),
            g.Accessor(bufferView=1, componentType=g.FLOAT, count=24, type=g.VEC3),
            g.Accessor(bufferView=2, componentType=g.UNSIGNED_SHORT, count=36, type=g.SCALAR),
        ],
        bufferViews=[
            g.BufferView(buffer=0, byteOffset=0, byteLength=len(positions), target=g.ARRAY_BUFFER),
            g.BufferView(buffer=0, byteOffset=len(positions), byteLength=len(normals), target=g.ARRAY_BUFFER),
            g.BufferView(buffer=0, byteOffset=len(positions) + len(normals), byteLength=len(indices),
                         target=g.ELEMENT_ARRAY_BUFFER),
        ],
        buffers=[g.Buffer(byteLength=len(blob))],
    )
    gltf.set_binary_blob(blob)
    # pygltflib writes the GLB header (magic "glTF", version 2, total length) and pads the chunks
    return b"".join(gltf.save_to_bytes())
