"""The one line a command prints for an error: what happened, where, and what to do."""
from __future__ import annotations

import errno
import os
import socket

_AGAIN = "run the same command again{again}"
# what to do about an operating-system error, by its errno; {folders}: the command's options that choose a folder
_OS_ADVICE = {
    errno.ENOSPC: f"free some disk space and {_AGAIN}",
    errno.EDQUOT: f"free some disk space and {_AGAIN}",
    errno.EACCES: "choose a folder you can write to ({folders})",
    errno.EPERM: "choose a folder you can write to ({folders})",
    errno.EROFS: "choose a folder on a writable disk ({folders})",
    errno.ENOTDIR: "a file stands where a folder is needed: move it, or choose another folder ({folders})",
    errno.EEXIST: "a file stands where a folder is needed: move it, or choose another folder ({folders})",
    errno.EISDIR: "a folder stands where a file is needed: move it, or choose another folder ({folders})",
}


def error_line(error: BaseException, folders: str, again: str = "") -> str:
    """The line for ``error``. ``folders`` names the failed command's options that choose where it writes (the
    advice on a folder it cannot write), ``again`` what running it again saves (`` (...)``; nothing for a command
    that starts over). Errors raised by emqlib carry their own advice; raw operating-system and network errors
    get it here."""
    from urllib.error import URLError

    if isinstance(error, URLError) or (isinstance(error, ConnectionError | TimeoutError | socket.gaierror)
                                       and error.errno is not None):
        reason = getattr(error, "reason", None) or error.strerror or error
        return f"error: network failure ({reason}); check the internet connection and {_AGAIN.format(again=again)}"
    if isinstance(error, OSError) and error.errno is not None:
        where = " -> ".join(os.fsdecode(f) if isinstance(f, bytes) else str(f)
                            for f in (error.filename, error.filename2) if f is not None)
        advice = _OS_ADVICE.get(error.errno, f"check that path and {_AGAIN}").format(folders=folders, again=again)
        return f"error: {error.strerror or error}: {where or 'unknown path'}; {advice}"
    text = str(error).strip()
    return f"error: {text.splitlines()[0] if text else type(error).__name__}"
