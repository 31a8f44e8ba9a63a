"""Where a run's state lives: git (refs, worktrees, commits), the run folder and its ``run.json``,
the append-only ``results.tsv`` and ``audit.jsonl``. The engine is their only writer.
"""
