"""The engine: a run's set-up, its trials (slots, processes, the scheduler), the integrity checks
and the recorder that writes each verdict. It presents nothing; :mod:`pytest_autoresearch.ui` does.
"""
