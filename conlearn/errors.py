"""Which errors are the user's input and which are conlearn's bugs.

The command line prints an *anticipated* error as one line (exit status 2) and shows the
traceback of anything else, with a request to report it. Anticipated are:

* :class:`UserError` and its subclasses (``conlearn.configfile.ConfigError``): raised on purpose,
  with a message that names the file and the key, line or atom at fault;
* a ``ValueError`` (or ``FileNotFoundError``) raised by a ``raise`` statement in conlearn's own code (the checks of data,
  model files, run directories: their messages name the file) — not one raised inside numpy,
  torch or another library, which is a bug of ours until a check in conlearn catches it first;
* an ``OSError`` that names a file (``FileNotFoundError``, ``IsADirectoryError``,
  ``PermissionError``, a full disk).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent

REPORT = ("this is a bug in conlearn, not in your input: please report it with the command "
          "line and the traceback above")


class UserError(Exception):
    """An input that cannot be used, said in one message naming the file and what is wrong."""


def _raised_in_conlearn(err: BaseException) -> bool:
    """The innermost traceback frame is conlearn's own code (not a library's)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    try:
        return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False


def user_message(err: BaseException) -> str | None:
    """The message to show for an anticipated error ``err``; None when it is unexpected."""
    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    if isinstance(err, (ValueError, OSError)) and _raised_in_conlearn(err) and str(err):
        return str(err)
    return None
