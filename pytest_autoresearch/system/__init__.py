"""What the operating system gives the loop: process groups, the frozen-file manifest, the
bubblewrap sandbox and the scrubbed environment. Knows nothing of runs or trials, so the engine,
the command agent and the trial-side plugin all use it without reaching up into the engine.
"""
