"""Ray's token authentication as `ray start` and `ray.init` apply it, for the Jobs API client and for joining.

A token comes from `RAY_AUTH_TOKEN`, the file named by `RAY_AUTH_TOKEN_PATH`, or `~/.ray/auth_token`, in that
order. `RAY_AUTH_MODE=disabled` sends none; unset, a token that exists is sent (as `ray start --head` enables
token auth when one exists); `RAY_AUTH_MODE=token` requires one. The token itself is never logged.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError

SOURCES = "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"
HOW = ("copy the cluster's token (`ray get-auth-token` on the head node) to ~/.ray/auth_token or set "
       "RAY_AUTH_TOKEN; RAY_AUTH_MODE=disabled sends none")


def find_token(environ: dict[str, str] | None = None) -> tuple[str | None, str]:
    """(token or None, where it came from / what was tried)."""
    env = os.environ if environ is None else environ
    if env.get("RAY_AUTH_TOKEN", "").strip():
        return env["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    if env.get("RAY_AUTH_TOKEN_PATH"):           # as Ray: a named file that cannot be read is not skipped
        path = Path(env["RAY_AUTH_TOKEN_PATH"]).expanduser()
        token = _read(path)
        return (token, f"RAY_AUTH_TOKEN_PATH ({path})") if token else (None, f"RAY_AUTH_TOKEN_PATH={path}, unreadable or empty")
    token = _read(Path(env.get("HOME") or Path.home()) / ".ray" / "auth_token")
    return (token, "~/.ray/auth_token") if token else (None, f"none in {SOURCES}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def auth_mode(environ: dict[str, str] | None = None) -> str:
    """RAY_AUTH_MODE as Ray reads it: "token", "disabled", or "" when unset."""
    return (os.environ if environ is None else environ).get("RAY_AUTH_MODE", "").strip().lower()


def token_sent(environ: dict[str, str] | None = None) -> tuple[str | None, str]:
    """(the token a client sends or None, a description of it for messages)."""
    env = os.environ if environ is None else environ
    mode = auth_mode(env)
    if mode == "disabled":
        return None, "no token (RAY_AUTH_MODE=disabled)"
    token, source = find_token(env)
    if token is None and mode == "token":
        raise UserError(f"RAY_AUTH_MODE=token but no token ({source}): {HOW}")
    return token, f"the token from {source}" if token else f"no token ({source})"


def auth_headers(environ: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """HTTP headers for the Ray Jobs API and a description of the token sent (for error messages)."""
    token, sent = token_sent(environ)
    return ({"Authorization": f"Bearer {token}"} if token else {}), sent


def auth_failure(where: str, detail: str, sent: str) -> UserError:
    """One line for a refused request: what the server said, which token was tried, how to provide one."""
    first = next((line.strip() for line in detail.splitlines() if line.strip()), "authentication failed")
    return UserError(f"{where} refused the request ({first[:120]}); sent {sent}: {HOW}")
