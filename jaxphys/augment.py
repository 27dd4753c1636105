"""Data augmentation as pure, jit-able functions ``(key, images) -> images``.

``images`` are ``(batch, height, width, channels)`` floats; the output has the same
shape and dtype, and labels are untouched. Each factory (``random_translation(...)``,
``random_rotation(...)``, ...) returns such a function, drawing independent
parameters per image from ``key`` (vmapped over the batch), so the same key always
gives the same result. They run on the device inside the compiled training step:
pass ``augment=compose(...)`` to :func:`jaxphys.train.make_train_step`.

The deterministic warps :func:`affine`, :func:`translate`, :func:`rotate` and
:func:`zoom` act on one image ``(height, width, channels)`` with bilinear
interpolation about the image centre; pixels mapped from outside the image are 0.
Coordinates are (row, column) in pixels; a positive rotation turns the content
counter-clockwise as displayed (rows downwards).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy import ndimage
from jax.typing import ArrayLike

__all__ = [
    "Augmentation", "affine", "translate", "rotate", "zoom", "elastic_warp",
    "random_translation", "random_rotation", "random_zoom", "random_elastic",
    "random_erasing", "random_flip", "compose",
]

Augmentation = Callable[[jax.Array, jax.Array], jax.Array]


def _grid(height: int, width: int) -> jax.Array:
  rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                            jnp.arange(width, dtype=jnp.float32), indexing="ij")
  return jnp.stack([rows, cols])  # (2, H, W)


def _sample(image: jax.Array, coords: jax.Array) -> jax.Array:
  """Bilinear samples of ``image`` (H, W, C) at ``coords`` (2, H, W); outside -> 0."""
  sample = lambda channel: ndimage.map_coordinates(channel, list(coords), order=1, mode="constant", cval=0.0)
  return jax.vmap(sample, in_axes=-1, out_axes=-1)(image).astype(image.dtype)


def affine(image: jax.Array, matrix: ArrayLike, shift: ArrayLike = (0.0, 0.0)) -> jax.Array:
  """Warps ``image`` ``(H, W, C)``: output pixel ``p`` takes input at ``matrix @ (p - c) + c - shift``.

  ``c`` is the centre ``((H-1)/2, (W-1)/2)``; ``matrix`` is ``(2, 2)`` acting on (row,
  col), ``shift`` ``(2,)`` pixels, so content moves by ``+shift``.

  >>> import jax.numpy as jnp
  >>> from jaxphys import augment
  >>> dot = jnp.zeros((5, 5, 1)).at[2, 2, 0].set(1.0)
  >>> jnp.argwhere(augment.affine(dot, jnp.eye(2), shift=(0.0, 1.0))[..., 0] > 0.5).tolist()
  [[2, 3]]
  """
  _check_image(image)
  h, w = image.shape[0], image.shape[1]
  centre = jnp.array([(h - 1) / 2.0, (w - 1) / 2.0], jnp.float32)[:, None, None]
  grid = _grid(h, w) - centre
  src = jnp.einsum("ij,jhw->ihw", jnp.asarray(matrix, jnp.float32), grid) + centre
  return _sample(image, src - jnp.asarray(shift, jnp.float32)[:, None, None])


def translate(image: jax.Array, shift: ArrayLike) -> jax.Array:
  """Moves the content of ``image`` ``(H, W, C)`` by ``shift = (rows, cols)`` pixels.

  >>> import jax.numpy as jnp
  >>> from jaxphys import augment
  >>> dot = jnp.zeros((5, 5, 1)).at[2, 2, 0].set(1.0)
  >>> jnp.argwhere(augment.translate(dot, (1.0, -2.0))[..., 0] > 0.5).tolist()  # down 1, left 2
  [[3, 0]]
  """
  return affine(image, jnp.eye(2), shift)


def rotate(image: jax.Array, degrees: ArrayLike) -> jax.Array:
  """Rotates ``image`` ``(H, W, C)`` by ``degrees`` about its centre, counter-clockwise as displayed.

  >>> import jax.numpy as jnp
  >>> from jaxphys import augment
  >>> right = jnp.zeros((5, 5, 1)).at[2, 4, 0].set(1.0)  # right of the centre
  >>> jnp.argwhere(augment.rotate(right, 90.0)[..., 0] > 0.5).tolist()  # now above it
  [[0, 2]]
  """
  t = jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
  c, s = jnp.cos(t), jnp.sin(t)
  # Rows point down, so counter-clockwise on screen is clockwise in (row, col).
  return affine(image, jnp.array([[c, s], [-s, c]]))


def zoom(image: jax.Array, factor: ArrayLike) -> jax.Array:
  """Scales the content of ``image`` ``(H, W, C)`` by ``factor`` about its centre (>1 enlarges).

  >>> import jax.numpy as jnp
  >>> from jaxphys import augment
  >>> dot = jnp.zeros((5, 5, 1)).at[2, 3, 0].set(1.0)  # one pixel right of the centre
  >>> jnp.argwhere(augment.zoom(dot, 2.0)[..., 0] > 0.9).tolist()  # two pixels right
  [[2, 4]]
  """
  return affine(image, jnp.eye(2) / jnp.asarray(factor, jnp.float32))


def elastic_warp(image: jax.Array, displacement: jax.Array) -> jax.Array:
  """Output pixel ``p`` takes input at ``p + displacement[:, p]``; ``displacement`` is (2, H, W).

  >>> import jax.numpy as jnp
  >>> from jaxphys import augment
  >>> image = jnp.arange(16.0).reshape(4, 4, 1)
  >>> bool(jnp.array_equal(augment.elastic_warp(image, jnp.zeros((2, 4, 4))), image))
  True
  """
  _check_image(image)
  if displacement.shape != (2,) + image.shape[:2]:
    raise ValueError(f"displacement must be (2, {image.shape[0]}, {image.shape[1]}) for image "
                     f"{image.shape}, got {displacement.shape}")
  return _sample(image, _grid(image.shape[0], image.shape[1]) + displacement)


def _check_image(image: jax.Array) -> None:
  if jnp.ndim(image) != 3:
    raise ValueError(f"image must be (height, width, channels), got shape {jnp.shape(image)}")


def _check(name: str, value: float, lo: float, hi: float = math.inf) -> None:
  if not lo <= value <= hi:
    raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")


def _per_image(fn: Callable[[jax.Array, jax.Array], jax.Array]) -> Augmentation:
  """Lifts ``fn(key, image)`` to a batch: one independent key per image."""

  def apply(key, images):
    if jnp.ndim(images) != 4:
      raise ValueError(f"images must be (batch, height, width, channels), got shape "
                       f"{jnp.shape(images)}")
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(fn)(keys, images)

  return apply


def random_translation(max_shift: float = 2.0) -> Augmentation:
  """Shifts each image by a uniform ``(rows, cols)`` in ``[-max_shift, max_shift]`` pixels.

  >>> import jax, jax.numpy as jnp
  >>> from jaxphys import augment
  >>> shift = augment.random_translation(2.0)
  >>> images = jnp.ones((4, 8, 8, 1))
  >>> out = shift(jax.random.key(0), images)
  >>> out.shape, bool(jnp.array_equal(out, shift(jax.random.key(0), images)))  # same key, same result
  ((4, 8, 8, 1), True)
  """
  _check("max_shift", max_shift, 0.0)
  return _per_image(lambda k, im: translate(im, jax.random.uniform(k, (2,), minval=-max_shift,
                                                                   maxval=max_shift)))


def random_rotation(max_degrees: float = 10.0) -> Augmentation:
  """Rotates each image by a uniform angle in ``[-max_degrees, max_degrees]``.

  >>> import jax, jax.numpy as jnp
  >>> from jaxphys import augment
  >>> augment.random_rotation(10.0)(jax.random.key(0), jnp.ones((2, 8, 8, 1))).shape
  (2, 8, 8, 1)
  """
  _check("max_degrees", max_degrees, 0.0, 180.0)
  return _per_image(lambda k, im: rotate(im, jax.random.uniform(k, (), minval=-max_degrees,
                                                                maxval=max_degrees)))


def random_zoom(max_zoom: float = 0.1) -> Augmentation:
  """Scales each image by a uniform factor in ``[1 - max_zoom, 1 + max_zoom]``.

  >>> import jax, jax.numpy as jnp
  >>> from jaxphys import augment
  >>> augment.random_zoom(0.1)(jax.random.key(0), jnp.ones((2, 8, 8, 1))).shape
  (2, 8, 8, 1)
  """
  _check("max_zoom", max_zoom, 0.0, 0.99)
  return _per_image(lambda k, im: zoom(im, jax.random.uniform(k, (), minval=1 - max_zoom,
                                                              maxval=1 + max_zoom)))


def _gaussian_matrix(n: int, sigma: float) -> jax.Array:
  """``(n, n)`` matrix of a zero-padded Gaussian blur of width ``sigma`` (truncated at 3 sigma)."""
  d = jnp.arange(n, dtype=jnp.float32)
  d = d[:, None] - d[None, :]
  radius = max(1, math.ceil(3 * sigma))
  k = jnp.where(jnp.abs(d) <= radius, jnp.exp(-0.5 * (d / sigma) ** 2), 0.0)
  norm = sum(math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1))
  return k / norm


def random_elastic(alpha: float = 8.0, sigma: float = 3.0) -> Augmentation:
  """Elastic distortion (Simard et al. 2003): uniform [-1, 1] displacements per pixel,
  smoothed by a Gaussian of width ``sigma`` pixels and scaled by ``alpha`` pixels.

  >>> import jax, jax.numpy as jnp
  >>> from jaxphys import augment
  >>> augment.random_elastic(8.0, 3.0)(jax.random.key(0), jnp.ones((2, 8, 8, 1))).shape
  (2, 8, 8, 1)
  """
  _check("alpha", alpha, 0.0)
  _check("sigma", sigma, 1e-3)

  def one(key, image):
    h, w = image.shape[0], image.shape[1]
    field = jax.random.uniform(key, (2, h, w), minval=-1.0, maxval=1.0)
    # Separable blur as two small matrix products: G_h @ F @ G_w^T.
    smooth = _gaussian_matrix(h, sigma) @ field @ _gaussian_matrix(w, sigma).T
    return elastic_warp(image, alpha * smooth)

  return _per_image(one)


def random_erasing(probability: float = 0.5, area: tuple[float, float] = (0.02, 0.2),
                   aspect: tuple[float, float] = (0.3, 3.3), value: float = 0.0) -> Augmentation:
  """Random erasing (Zhong et al. 2017): with ``probability``, sets a rectangle covering a
  uniform fraction ``area`` of the image, with log-uniform aspect ratio in ``aspect``,
  to ``value``.

  >>> import jax, jax.numpy as jnp
  >>> from jaxphys import augment
  >>> out = augment.random_erasing(1.0)(jax.random.key(0), jnp.ones((2, 8, 8, 1)))
  >>> bool((out == 0).any(axis=(1, 2, 3)).all())  # every image lost a rectangle
  True
  """
  _check("probability", probability, 0.0, 1.0)
  if not 0 < area[0] <= area[1] <= 1:
    raise ValueError(f"area must be (low, high) with 0 < low <= high <= 1, got {area}")
  if not 0 < aspect[0] <= aspect[1]:
    raise ValueError(f"aspect must be (low, high) with 0 < low <= high, got {aspect}")
  lo, hi = math.log(aspect[0]), math.log(aspect[1])

  def one(key, image):
    h, w = image.shape[0], image.shape[1]
    k_on, k_area, k_ratio, k_row, k_col = jax.random.split(key, 5)
    frac = jax.random.uniform(k_area, (), minval=area[0], maxval=area[1])
    ratio = jnp.exp(jax.random.uniform(k_ratio, (), minval=lo, maxval=hi))
    eh = jnp.clip(jnp.round(jnp.sqrt(frac * h * w * ratio)), 1, h)
    ew = jnp.clip(jnp.round(jnp.sqrt(frac * h * w / ratio)), 1, w)
    top = jnp.floor(jax.random.uniform(k_row) * (h - eh + 1))
    left = jnp.floor(jax.random.uniform(k_col) * (w - ew + 1))
    rows, cols = _grid(h, w)
    inside = (rows >= top) & (rows < top + eh) & (cols >= left) & (cols < left + ew)
    erase = inside & (jax.random.uniform(k_on) < probability)
    return jnp.where(erase[..., None], jnp.asarray(value, image.dtype), image)

  return _per_image(one)


def random_flip(probability: float = 0.5) -> Augmentation:
  """Mirrors each image left-right with ``probability`` (for left-right symmetric classes,
  such as clothes; not for digits).

  >>> import jax, jax.numpy as jnp
  >>> from jaxphys import augment
  >>> image = jnp.arange(4.0).reshape(1, 1, 4, 1)
  >>> augment.random_flip(1.0)(jax.random.key(0), image)[0, 0, :, 0]
  Array([3., 2., 1., 0.], dtype=float32)
  """
  _check("probability", probability, 0.0, 1.0)
  return _per_image(lambda k, im: jnp.where(jax.random.uniform(k) < probability, im[:, ::-1], im))


def compose(*transforms: Augmentation) -> Augmentation:
  """Applies ``transforms`` in order, each with its own key split from ``key``.

  >>> import jax, jax.numpy as jnp
  >>> from jaxphys import augment
  >>> digits = augment.compose(augment.random_rotation(10.0), augment.random_translation(2.0))
  >>> digits(jax.random.key(0), jnp.ones((3, 8, 8, 1))).shape
  (3, 8, 8, 1)
  """
  for i, t in enumerate(transforms):
    if not callable(t):
      raise ValueError(f"transforms[{i}] must be a function (key, images) -> images, got {t!r}")

  def apply(key, images):
    for k, t in zip(jax.random.split(key, max(len(transforms), 1)), transforms):
      images = t(k, images)
    return images

  return apply
