"""Helpers shared by the export tests: reading GLBs and sampling textures as viewers do.

Written independently of text2mesh.export so the tests do not check the exporter with itself.
"""

from __future__ import annotations

import io

import numpy as np
import pygltflib
from PIL import Image


def srgb_from_linear(c: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1)."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Texture lookup as a viewer does it: glTF UVs (origin top-left), texel centres at +0.5."""
    h, w = image.shape[:2]
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip(uv[:, 1] * h - 0.5, 0, h - 1)
    x0, y0 = np.minimum(x.astype(int), w - 2), np.minimum(y.astype(int), h - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    img = image.astype(np.float64) / 255.0
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def glb_texture(path):
    """(positions [V,3], faces [F,3], uv [V,2] glTF convention, image [N,N,3], attribute names)."""
    gltf = pygltflib.GLTF2().load(str(path))
    blob = gltf.binary_blob()

    def read(accessor_index, dtype, width):
        accessor = gltf.accessors[accessor_index]
        view = gltf.bufferViews[accessor.bufferView]
        return np.frombuffer(blob, dtype, accessor.count * width, view.byteOffset).reshape(-1, width)

    primitive = gltf.meshes[0].primitives[0]
    attributes = primitive.attributes
    image_view = gltf.bufferViews[gltf.images[0].bufferView]
    png = blob[image_view.byteOffset : image_view.byteOffset + image_view.byteLength]
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    names = {name for name, value in vars(attributes).items() if value is not None}
    positions = read(attributes.POSITION, np.float32, 3)
    faces = read(primitive.indices, np.uint32, 1).reshape(-1, 3)
    return positions, faces, read(attributes.TEXCOORD_0, np.float32, 2), image, names


def nearest_input_vertex(points, vertices):
    distances = ((points[:, None, :] - vertices[None, :, :]) ** 2).sum(-1)
    return distances.argmin(1)
