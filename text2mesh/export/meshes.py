"""Mesh files with colours: OBJ, PLY, GLB, and OBJ + MTL + PNG or GLB with a baked texture.

One writer per format, registered in :data:`WRITERS` by suffix; :func:`export_mesh` picks one
and writes atomically. What each format carries:

- ``obj``: ``v x y z r g b`` lines (read by MeshLab and trimesh; ignored by some tools).
  With a texture: ``vt`` coordinates, an ``.mtl`` material and a ``.png`` beside the OBJ.
- ``ply``: binary little-endian, per-vertex ``uchar`` red/green/blue/alpha (MeshLab, Blender).
- ``glb``: glTF 2.0 binary with smooth normals and, without a texture, ``COLOR_0`` holding the
  colours converted to *linear* RGB as float32 (glTF defines vertex colours as linear, so
  viewers show the intended sRGB colours). With a texture, the PNG is the material's
  ``baseColorTexture`` (sRGB) and ``COLOR_0`` is left out, since glTF multiplies the two.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import trimesh

from ..errors import ConfigError
from .files import write_bytes_atomic
from .texture import BakedTexture, SurfaceColorFn, bake_texture

Writer = Callable[[Path, np.ndarray, np.ndarray, np.ndarray | None, BakedTexture | None], list[Path]]


def export_mesh(
    vertices: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    colors: np.ndarray | torch.Tensor | None,
    path: str | Path,
    fmt: str | None = None,
    texture: int | None = None,
    color_fn: SurfaceColorFn | None = None,
) -> list[Path]:
    """Write a coloured mesh to ``path``.

    Args:
        vertices: [V, 3] float positions (in the frame the file should have).
        faces: [F, 3] integer vertex indices.
        colors: [V, 3] float sRGB colours in [0, 1], or None for an uncoloured mesh.
        path: output file; missing folders are created.
        fmt: "obj", "ply" or "glb"; None: from the suffix of ``path``.
        texture: bake a ``texture``² UV texture (obj and glb only); None: vertex colours.
        color_fn: what the texture shows at a surface point (see
            :func:`text2mesh.export.texture.field_color_fn`); None: interpolated ``colors``.
    Returns:
        The files written (the mesh first; an OBJ with a texture also writes .mtl and .png).
    Raises:
        ConfigError: unknown format, a texture asked of PLY, or a bad texture size.
    """
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in WRITERS:
        raise ConfigError(f"unknown mesh format {fmt!r}; use one of {', '.join(WRITERS)}")
    vertices_np = _as_numpy(vertices, np.float32).reshape(-1, 3)
    faces_np = _as_numpy(faces, np.int64).reshape(-1, 3)
    colors_np = None if colors is None else np.clip(_as_numpy(colors, np.float32).reshape(-1, 3), 0, 1)
    if colors_np is not None and len(colors_np) != len(vertices_np):
        raise ValueError(f"{len(colors_np)} colours for {len(vertices_np)} vertices")
    if faces_np.size and (faces_np.min() < 0 or faces_np.max() >= len(vertices_np)):
        raise ValueError("face indices out of range of the vertices")
    baked = None
    if texture is not None:
        if fmt == "ply":
            raise ConfigError("PLY cannot carry a texture; use --format glb or obj with --texture")
        if not 16 <= texture <= 16384:
            raise ConfigError(f"texture size {texture} is out of range; use 16..16384 (e.g. 2048)")
        if colors_np is None and color_fn is None:
            raise ConfigError("a texture needs colours; this mesh has none")
        baked = bake_texture(vertices_np, faces_np, colors_np, texture, color_fn)
    return WRITERS[fmt](path, vertices_np, faces_np, colors_np, baked)


def _as_numpy(array, dtype) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.ascontiguousarray(array, dtype=dtype)


def colors_to_rgba8(colors: np.ndarray) -> np.ndarray:
    """[V, 3] float sRGB in [0, 1] -> [V, 4] uint8 RGBA (opaque), rounded to nearest."""
    rgb = np.round(np.clip(colors, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def srgb_to_linear(colors: np.ndarray) -> np.ndarray:
    """The sRGB transfer function inverted (IEC 61966-2-1), elementwise on [0, 1] values."""
    c = np.clip(colors, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _trimesh(vertices, faces, colors=None) -> trimesh.Trimesh:
    rgba = None if colors is None else colors_to_rgba8(colors)
    return trimesh.Trimesh(vertices, faces, vertex_colors=rgba, process=False)


def _textured_trimesh(baked: BakedTexture, name: str) -> trimesh.Trimesh:
    """A trimesh whose material shows the texture unmodified (white Kd, no specular)."""
    from PIL import Image

    material = trimesh.visual.material.SimpleMaterial(
        image=Image.fromarray(baked.image),
        diffuse=(255, 255, 255, 255),
        ambient=(255, 255, 255, 255),
        specular=(0, 0, 0, 255),
        name=name,
    )
    visual = trimesh.visual.TextureVisuals(uv=baked.uv, material=material)
    return trimesh.Trimesh(baked.vertices, baked.faces, visual=visual, process=False)


def write_obj(path: Path, vertices, faces, colors, baked: BakedTexture | None) -> list[Path]:
    """OBJ with vertex colours, or OBJ + ``<stem>.mtl`` + ``<stem>.png`` with a texture."""
    if baked is None:
        mesh = _trimesh(vertices, faces, colors)
        text = trimesh.exchange.obj.export_obj(mesh, include_color=colors is not None, header="text2mesh")
        return [write_bytes_atomic(path, text.encode())]
    text, files = trimesh.exchange.obj.export_obj(
        _textured_trimesh(baked, path.stem),
        include_texture=True,
        return_texture=True,
        mtl_name=f"{path.stem}.mtl",
        header="text2mesh",
    )
    # trimesh names the image after the material (<stem>.png); both files go beside the OBJ.
    extra = [write_bytes_atomic(path.with_name(name), data) for name, data in sorted(files.items())]
    return [write_bytes_atomic(path, text.encode()), *extra]


def write_ply(path: Path, vertices, faces, colors, baked: BakedTexture | None) -> list[Path]:
    """Binary PLY with per-vertex uchar RGBA colours."""
    data = _trimesh(vertices, faces, colors).export(file_type="ply", encoding="binary")
    return [write_bytes_atomic(path, data)]


def write_glb(path: Path, vertices, faces, colors, baked: BakedTexture | None) -> list[Path]:
    """glTF 2.0 binary (see the module docstring for what it holds)."""
    normals = _trimesh(vertices, faces).vertex_normals.astype(np.float32)
    if baked is None:
        data = glb_bytes(vertices, faces, normals, colors=colors)
    else:
        data = glb_bytes(
            baked.vertices, baked.faces, normals[baked.vertex_map], uv=baked.uv, image=baked.image
        )
    return [write_bytes_atomic(path, data)]


def glb_bytes(
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    colors: np.ndarray | None = None,
    uv: np.ndarray | None = None,
    image: np.ndarray | None = None,
) -> bytes:
    """One-mesh GLB.

    Args:
        vertices, normals: [V, 3] float32. faces: [F, 3] int.
        colors: [V, 3] sRGB in [0, 1], stored as linear float32 ``COLOR_0``; or None.
        uv: [V, 2] texture coordinates (OBJ convention; flipped to glTF's here) with
            image: [N, N, 3] uint8 sRGB base-colour texture; or both None.
    """
    import io

    import pygltflib as gl
    from PIL import Image

    blob = bytearray()
    views: list[gl.BufferView] = []
    accessors: list[gl.Accessor] = []

    def add_view(data: bytes, target: int | None) -> int:
        blob.extend(b"\0" * (-len(blob) % 4))
        views.append(gl.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data), target=target))
        blob.extend(data)
        return len(views) - 1

    def add_accessor(array: np.ndarray, kind: str, component: int, target: int, bounds=False) -> int:
        view = add_view(array.tobytes(), target)
        extra = {"min": array.min(0).tolist(), "max": array.max(0).tolist()} if bounds else {}
        accessors.append(gl.Accessor(bufferView=view, componentType=component, count=len(array), type=kind, **extra))
        return len(accessors) - 1

    indices = np.ascontiguousarray(faces, np.uint32).reshape(-1)
    attributes = gl.Attributes(
        POSITION=add_accessor(np.ascontiguousarray(vertices, np.float32), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER, True),
        NORMAL=add_accessor(np.ascontiguousarray(normals, np.float32), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER),
    )
    index_accessor = add_accessor(indices, gl.SCALAR, gl.UNSIGNED_INT, gl.ELEMENT_ARRAY_BUFFER)
    pbr = gl.PbrMetallicRoughness(baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=1.0)
    gltf = gl.GLTF2(asset=gl.Asset(version="2.0", generator="text2mesh"))
    if colors is not None:
        linear = np.ascontiguousarray(srgb_to_linear(colors), np.float32)
        attributes.COLOR_0 = add_accessor(linear, gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER)
    if uv is not None and image is not None:
        gltf_uv = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=-1).astype(np.float32)
        attributes.TEXCOORD_0 = add_accessor(gltf_uv, gl.VEC2, gl.FLOAT, gl.ARRAY_BUFFER)
        png = io.BytesIO()
        Image.fromarray(image).save(png, format="PNG")
        gltf.images = [gl.Image(bufferView=add_view(png.getvalue(), None), mimeType="image/png")]
        gltf.samplers = [gl.Sampler(magFilter=gl.LINEAR, minFilter=gl.LINEAR_MIPMAP_LINEAR,
                                    wrapS=gl.CLAMP_TO_EDGE, wrapT=gl.CLAMP_TO_EDGE)]
        gltf.textures = [gl.Texture(sampler=0, source=0)]
        pbr.baseColorTexture = gl.TextureInfo(index=0)
    blob.extend(b"\0" * (-len(blob) % 4))
    gltf.materials = [gl.Material(pbrMetallicRoughness=pbr, doubleSided=True, name="text2mesh")]
    gltf.meshes = [gl.Mesh(primitives=[gl.Primitive(attributes=attributes, indices=index_accessor, material=0)])]
    gltf.nodes = [gl.Node(mesh=0)]
    gltf.scenes = [gl.Scene(nodes=[0])]
    gltf.scene = 0
    gltf.accessors = accessors
    gltf.bufferViews = views
    gltf.buffers = [gl.Buffer(byteLength=len(blob))]
    gltf.set_binary_blob(bytes(blob))
    return b"".join(gltf.save_to_bytes())


WRITERS: dict[str, Writer] = {"obj": write_obj, "ply": write_ply, "glb": write_glb}
