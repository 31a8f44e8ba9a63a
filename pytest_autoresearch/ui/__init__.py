"""What a person sees: the ``--autoresearch`` pytest session (the driver), terminal text, the
progress plot, ``--autoresearch-report`` and ``--autoresearch-finalize``. Imported lazily by the
entry point, only when one of those options is given.
"""
