import numpy as np

from lshrs.hyperplanes import Hyperplanes, flip_masks, make_planes


def hasher(dim=32, tables=4, bits=10, seed=7):
    return Hyperplanes(make_planes(dim, tables, bits, seed), tables, bits)


def test_same_seed_same_codes():
    x = np.random.default_rng(0).standard_normal((50, 32)).astype(np.float32)
    assert np.array_equal(hasher().codes(x), hasher().codes(x))
    assert not np.array_equal(hasher(seed=1).codes(x), hasher().codes(x))


def test_codes_do_not_depend_on_the_batch():
    x = np.random.default_rng(1).standard_normal((300, 32)).astype(np.float32)
    h = hasher()
    whole = h.codes(x)
    singles = np.vstack([h.codes(x[i : i + 1]) for i in range(0, 300, 37)])
    assert np.array_equal(whole[::37], singles)


def test_codes_fit_in_num_bits_and_scale_invariant():
    x = np.random.default_rng(2).standard_normal((100, 32)).astype(np.float32)
    h = hasher()
    codes = h.codes(x)
    assert codes.shape == (100, 4)
    assert codes.min() >= 0 and codes.max() < 2**10
    assert np.array_equal(codes, h.codes(x * 3.5))


def test_probes_start_home_and_are_distinct():
    x = np.random.default_rng(3).standard_normal((20, 32)).astype(np.float32)
    h = hasher()
    probes = h.probes(x, 8)
    assert probes.shape == (20, 4, 8)
    assert np.array_equal(probes[:, :, 0], h.codes(x))
    for row in probes.reshape(-1, 8):
        assert len(set(row.tolist())) == 8


def test_first_flip_is_the_bit_nearest_zero():
    margins = np.array([[[0.9, 0.05, 0.5, 0.7]]])
    masks = flip_masks(margins, 3)
    # cheapest: flip bit 1 alone, then bit 2 alone, then bits 1+2 (0.05^2+0.5^2 < 0.7^2)
    assert masks[0, 0].tolist() == [0b0010, 0b0100, 0b0110]
