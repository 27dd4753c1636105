import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxphys import augment as A


def _pattern(h=9, w=11):
  """An asymmetric L-shaped pattern away from the border, (H, W, 1)."""
  img = np.zeros((h, w, 1), np.float32)
  img[2:6, 3, 0] = 1.0
  img[5, 3:7, 0] = 0.5
  return jnp.asarray(img)


def test_one_pixel_shift_moves_the_pattern_by_one_pixel():
  img = _pattern()
  np.testing.assert_allclose(A.translate(img, (1.0, 0.0)), np.roll(img, 1, axis=0), atol=1e-6)
  np.testing.assert_allclose(A.translate(img, (0.0, -1.0)), np.roll(img, -1, axis=1), atol=1e-6)
  np.testing.assert_allclose(A.translate(img, (2.0, 3.0)), np.roll(img, (2, 3), axis=(0, 1)), atol=1e-6)


def test_content_shifted_out_is_zero():
  img = jnp.ones((5, 5, 1))
  out = A.translate(img, (2.0, 0.0))
  np.testing.assert_array_equal(out[:2], 0.0)
  np.testing.assert_allclose(out[2:], 1.0)


def test_rotation_identities():
  img = _pattern(10, 10)
  np.testing.assert_allclose(A.rotate(img, 0.0), img, atol=1e-6)
  r = img
  for _ in range(4):
    r = A.rotate(r, 90.0)
  np.testing.assert_allclose(r, img, atol=1e-5)
  # 90 degrees counter-clockwise on screen is NumPy's rot90 of the (row, col) array.
  np.testing.assert_allclose(A.rotate(img, 90.0), np.rot90(img, 1, axes=(0, 1)), atol=1e-5)
  np.testing.assert_allclose(A.zoom(img, 1.0), img, atol=1e-6)


def test_zoom_scales_distances_from_the_centre():
  img = np.zeros((21, 21, 1), np.float32)
  img[10, 14, 0] = 1.0  # 4 pixels right of the centre
  out = A.zoom(jnp.asarray(img), 2.0)
  assert np.unravel_index(np.argmax(out[..., 0]), (21, 21)) == (10, 18)


@pytest.mark.parametrize("transform", [
    A.random_translation(3.0), A.random_rotation(15.0), A.random_zoom(0.2),
    A.random_elastic(8.0, 3.0), A.random_erasing(1.0),
    A.compose(A.random_rotation(10.0), A.random_translation(2.0), A.random_erasing(0.5)),
])
def test_random_transforms_are_pure_deterministic_and_shape_preserving(transform):
  images = jax.random.uniform(jax.random.key(0), (6, 28, 28, 1))
  f = jax.jit(transform)
  a = f(jax.random.key(1), images)
  chex.assert_shape(a, images.shape)
  chex.assert_type(a, images.dtype)
  np.testing.assert_array_equal(a, f(jax.random.key(1), images))
  assert not np.allclose(a, f(jax.random.key(2), images))
  assert not np.allclose(a, images)
  # Independent parameters per image: two equal inputs come out different.
  same = jnp.broadcast_to(images[:1], images.shape)
  out = f(jax.random.key(3), same)
  assert not np.allclose(out[0], out[1])


def test_random_erasing_erases_a_rectangle_of_the_requested_area():
  images = jnp.ones((200, 20, 20, 1))
  out = np.asarray(A.random_erasing(1.0, area=(0.1, 0.2), value=0.0)(jax.random.key(0), images))
  erased = (out[..., 0] == 0)
  frac = erased.mean(axis=(1, 2))
  assert np.all(frac > 0.05) and np.all(frac < 0.3)
  for mask in erased[:20]:  # the zeros form one filled rectangle
    rows, cols = np.nonzero(mask)
    assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
  none = A.random_erasing(0.0)(jax.random.key(0), images)
  np.testing.assert_array_equal(none, images)


def test_elastic_with_zero_strength_is_identity_and_mass_is_roughly_kept():
  images = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))
  np.testing.assert_allclose(A.random_elastic(0.0)(jax.random.key(1), images), images, atol=1e-6)
  digit = jnp.zeros((1, 28, 28, 1)).at[:, 8:20, 10:18].set(1.0)
  warped = A.random_elastic(4.0, 4.0)(jax.random.key(2), digit)
  np.testing.assert_allclose(warped.sum(), digit.sum(), rtol=0.1)


def test_elastic_smoothing_is_a_normalised_gaussian_blur():
  m = np.asarray(A._gaussian_matrix(40, 3.0))
  interior = m[20]
  np.testing.assert_allclose(interior.sum(), 1.0, atol=1e-6)
  x = np.arange(40) - 20
  ref = np.exp(-0.5 * (x / 3.0) ** 2) * (np.abs(x) <= 9)
  np.testing.assert_allclose(interior, ref / ref.sum(), atol=1e-7)


def test_random_flip_mirrors_left_right_or_keeps():
  images = jax.random.uniform(jax.random.key(0), (64, 5, 7, 1))
  out = np.asarray(A.random_flip(0.5)(jax.random.key(1), images))
  flipped = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, np.asarray(images))])
  kept = np.array([np.array_equal(o, i) for o, i in zip(out, np.asarray(images))])
  assert np.all(flipped ^ kept) and 10 < flipped.sum() < 54
