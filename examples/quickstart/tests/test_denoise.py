"""Gates: whatever the constants, the denoiser must stay a denoiser."""

from denoise import denoise


def test_keeps_the_length():
    assert len(denoise([0.0, 1.0] * 50)) == 100


def test_leaves_a_constant_signal_alone():
    assert all(abs(y - 2.0) < 1e-9 for y in denoise([2.0] * 60))
