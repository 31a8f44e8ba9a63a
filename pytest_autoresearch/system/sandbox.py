"""The trial's environment: no secrets, and (optionally) a bubblewrap sandbox.

Candidate code runs inside the trial, so the trial must not hand it the agent's credentials:
variables that look like secrets (by name, or a value that is a URL with credentials) are
removed unless the user passes them on (``autoresearch_pass_env``); their values are what the
driver redacts from trial text (:func:`secret_values`, used by
:mod:`pytest_autoresearch.engine.evaluation`). With
``autoresearch_sandbox = true`` and ``bwrap`` installed, the trial also runs with the whole
filesystem read-only except the worktree (whose frozen files stay read-only), a private
temporary folder and the run's pytest cache; the home folder hidden except the Python it needs
(and the slot's manifest and carried data); no network; its own process namespace, torn down
with the driver. The spec and the result pipe reach the trial as inherited file descriptors
(:mod:`pytest_autoresearch.engine.trial_process`), not as paths the sandbox must show.
"""

from __future__ import annotations

import re
import shutil
import site
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

# a word of the name (split on "_") that says secret: alone or, for the unambiguous ones, at the
# end of a run-together word (OPENAIKEY, MYSQLPWD, SENTRYDSN); the longer ones anywhere in it
_WORDS = r"PATS?|PASS|PRIVATE|CREDS"  # alone only: COMPAT, GIT_ASKPASS are no secrets
_SUFFIXES = r"KEYS?|TOKENS?|SECRETS?|PASSWORDS?|PASSWD|PASSPHRASE|PWD|DSN|WEBHOOKS?|CREDENTIALS?|AUTH"
_SECRET = re.compile(
    rf"(?:^|_)(?:{_WORDS}|[A-Z0-9]*(?:{_SUFFIXES}))(?:_|$)|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|WEBHOOK|APIKEY|TOKEN(?!IZ)",
    re.IGNORECASE,
)
#: Names that match the rule but are not secrets: the working folder (``PWD``, ``OLDPWD``).
NOT_SECRET = frozenset({"PWD", "OLDPWD"})
# a URL that carries credentials: scheme://user:password@host or scheme://token@host
_CREDENTIAL_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?P<userinfo>[^\s/?#@]+)@")


def looks_secret(name: str, value: str | None = None) -> bool:
    """``OPENAI_API_KEY``, ``GITHUB_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``PGPASSWORD``,
    ``MYSQL_PWD``, ``GITHUB_PAT``, ``OPENAIKEY``, ``SENTRY_DSN``, ``SLACK_WEBHOOK_URL``,
    ``SSH_AUTH_SOCK``, ...; and any variable whose ``value`` is a URL with credentials
    (``DATABASE_URL=postgres://user:password@host/db``). Not ``PATH``, ``PYTHONPATH``, ``PWD``,
    ``OLDPWD``, ``GIT_AUTHOR_NAME`` or ``TOKENIZERS_PARALLELISM``."""
    if name.upper() in NOT_SECRET:
        return False
    return bool(_SECRET.search(name)) or (value is not None and url_credentials(value) != [])


def url_credentials(value: str) -> list[str]:
    """The credentials in the URLs of ``value``: for ``scheme://user:pass@host``, ``user:pass``
    and ``pass``; for ``scheme://token@host``, ``token``."""
    out = []
    for match in _CREDENTIAL_URL.finditer(value):
        userinfo = match.group("userinfo")
        out.append(userinfo)
        _user, colon, password = userinfo.partition(":")
        if colon and password:
            out.append(password)
    return out


def scrub(env: Mapping[str, str], keep: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """The environment without secret-looking variables (except ``keep``), and what was removed."""
    kept = set(keep)
    removed = sorted(k for k, v in env.items() if k not in kept and looks_secret(k, v))
    gone = set(removed)
    return {k: v for k, v in env.items() if k not in gone}, removed


def secret_values(env: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """What to redact from trial text: each scrubbed variable's value, and the credentials of
    the URLs in it, mapped to the variable's name."""
    out: dict[str, str] = {}
    for name in names:
        value = env.get(name)
        if value:
            for part in (value, *url_credentials(value)):
                out.setdefault(part, name)
    return out


def bwrap_available() -> str | None:
    return shutil.which("bwrap")


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def bwrap_args(
    *,
    repo_root: Path,
    worktree: Path,
    frozen: Iterable[Path],
    writable: Iterable[Path],
    readable: Iterable[Path],
    cwd: Path,
    masked: Iterable[Path] = (),
) -> list[str]:
    """bubblewrap arguments (to be passed through ``--args FD``) for one trial.

    ``frozen`` are files inside the worktree bound read-only over themselves, as is the
    worktree's ``.git`` link (a bind mount cannot be replaced, renamed or removed either); ``writable``
    are folders outside it the trial must write (pytest's cache); ``readable`` are further
    paths that must stay visible (the manifest, carried data). /tmp and the home folder are
    hidden; the interpreter and its packages stay visible wherever they live (a venv inside
    the project included), but nothing else of the user's checkout (``repo_root``, when it lies
    in one of them) except the worktree. ``masked`` folders, where they are visible at all,
    show empty (the run folder, to a re-score that must not find the loop).
    """
    home = Path.home()
    # no capabilities, even for a trial run as root: it could remount /sys (its cgroup) writable
    args = ["--die-with-parent", "--cap-drop", "ALL", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/dev/shm"]
    hidden = [Path("/tmp")] + ([home] if home != Path("/") else [])
    for folder in hidden:
        args += ["--tmpfs", str(folder)]
    # what the trial needs from the hidden folders: the interpreter, its packages, carried data
    interpreter = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.executable).parent}
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site:
        interpreter.add(Path(user_site))
    wanted = interpreter | set(map(Path, readable))
    others = {Path(p) for p in sys.path if p} - wanted  # editable installs, .pth entries, ...
    for path in sorted(wanted | others):
        if not path.exists() or not any(_under(path, folder) for folder in hidden):
            continue
        if path in wanted or not (_under(path, repo_root) or any(path.resolve() == f.resolve() for f in hidden)):
            args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(worktree), str(worktree)]
    link = worktree / ".git"  # the worktree's link to its repository: the trial cannot rewrite it
    if link.is_file() and not link.is_symlink():
        args += ["--ro-bind", str(link), str(link)]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    for path in frozen:
        if path.exists() and not path.is_symlink():
            args += ["--ro-bind", str(path), str(path)]
    for path in masked:
        if path.is_dir() and not any(_under(path, folder) for folder in hidden):
            args += ["--tmpfs", str(path)]
    args += ["--chdir", str(cwd)]
    return args


def environment(env: Mapping[str, str]) -> dict[str, str]:
    """The variables a sandboxed trial needs changed: a private, writable temporary folder."""
    out = dict(env)
    out["TMPDIR"] = "/tmp"
    out.pop("TEMP", None)
    out.pop("TMP", None)
    return out
