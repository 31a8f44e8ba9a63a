"""Gates: whatever the constants, the denoiser must stay a denoiser."""


def test_keeps_the_length(denoised):
    assert len(denoised["alternating"]) == 100


def test_leaves_a_constant_signal_alone(denoised):
    assert all(abs(y - 2.0) < 1e-9 for y in denoised["constant"])
