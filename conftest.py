"""Root conftest: our own tests drive pytest itself through pytester."""

pytest_plugins = ["pytester"]
