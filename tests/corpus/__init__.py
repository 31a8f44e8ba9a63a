"""The acceptance corpus: the projects and what a user adds to each (see projects.py)."""
