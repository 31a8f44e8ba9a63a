"""Proposals: the mutation surface, the diff and answer formats, and the checks a change passes
before anything runs. Pure text work over the files of the current best (no git, no processes).
"""
