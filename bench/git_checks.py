"""What the checks before the driver's git calls cost, per trial: driver CPU time, measured directly.

    .venv/bin/python bench/git_checks.py [--trials 300] [--calls 12]

A fresh repository (with git's sample hooks, as ``git init`` leaves them) and one linked worktree,
set up as a run sets them up. Each simulated trial does what the integrity check does after a
trial (``RepoGuard.take`` and ``Worktree.restore_links``: a stat of every watched file, no git)
plus ``--calls`` more of the checks each driver git call makes first (a trial makes about ten
git calls: stage, write-tree, status, commit-tree, reset, clean, refs). Every tenth trial rewrites
the worktree's ``.git`` link and appends to ``.git/config`` (so the read-and-restore path is in the
figure too). Reported: CPU time (``time.process_time``) per trial, against the 20 ms budget.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_autoresearch.store.gitguard import RepoGuard  # noqa: E402
from pytest_autoresearch.store.gitstate import Repository  # noqa: E402

BUDGET_MS = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--calls", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=env)
        (root / "model.py").write_text("X = 1\n")
        subprocess.run(["git", "-C", str(root), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(root), "commit", "-q", "-m", "i"], check=True, env=env)
        repo = Repository(root)
        worktree = repo.add_worktree(root / ".autoresearch" / "t" / "worktree", repo.head())
        repo.guard = RepoGuard(repo.paths)
        watched = len(repo.guard.files.paths) + len(repo.guard.configs.paths) + len(worktree.links.files.paths) + 1
        link, config = worktree.path / ".git", repo.paths.common_dir / "config"
        found = 0
        start = time.process_time()
        for trial in range(args.trials):
            if trial % 10 == 9:
                link.write_text(f"gitdir: {repo.paths.common_dir}\n")
                with config.open("a") as f:
                    f.write("[core]\n\tfsmonitor = true\n")
            found += len(repo.guard.take()) + len(worktree.restore_links())
            for _ in range(args.calls):
                repo.check()
                worktree.links.check()
        per_trial = (time.process_time() - start) / args.trials * 1000
        assert found == 2 * (args.trials // 10), found
        repo.remove_worktree(worktree.path)
    print(f"{watched} paths watched; {args.trials} trials, {1 + args.calls} checks each (every tenth with a change to restore)")
    print(f"driver CPU per trial: {per_trial:.3f} ms (budget {BUDGET_MS:g} ms): {'PASS' if per_trial <= BUDGET_MS else 'FAIL'}")


if __name__ == "__main__":
    main()
