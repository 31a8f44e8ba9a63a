"""A denoiser for a sampled signal: the mutable surface of this example.

A centred moving average followed by two-way exponential smoothing. The constants below
are what the agent tunes.
"""

WINDOW = 3
ALPHA = 0.9
PASSES = 1


def moving_average(xs, window):
    half = window // 2
    out = []
    for i in range(len(xs)):
        lo, hi = max(0, i - half), min(len(xs), i + half + 1)
        out.append(sum(xs[lo:hi]) / (hi - lo))
    return out


def exponential(xs, alpha):
    out, level = [], xs[0]
    for x in xs:
        level = alpha * x + (1 - alpha) * level
        out.append(level)
    return out


def denoise(xs):
    ys = list(xs)
    for _ in range(PASSES):
        ys = moving_average(ys, WINDOW)
    forward = exponential(ys, ALPHA)
    backward = exponential(ys[::-1], ALPHA)[::-1]
    return [(a + b) / 2 for a, b in zip(forward, backward)]
