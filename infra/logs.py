"""Secrets never reach a log line, at any level.

aiokafka logs every request it sends at DEBUG, and with SASL PLAIN the
authentication request carries the password in clear
(``sasl_auth_bytes=b'user\\x00user\\x00<password>'``). Any other line could
echo a secret too, so every record is checked where it is made, whatever
logger makes it and whatever handler the worker sets up later.
"""

from __future__ import annotations

import logging
from typing import Any

MASK = "***"

_HIDDEN = "SaslAuthenticate(hidden)"

_secrets: set[str] = set()
_make_record = logging.getLogRecordFactory()


def hide(*secrets: str | None) -> None:
    """Mask these values in every log record made from now on.

    >>> hide("hunter2")
    >>> make = logging.getLogRecordFactory()
    >>> make("x", logging.DEBUG, "", 0, "pw %s", ("hunter2",), None).getMessage()
    'pw ***'
    """
    _secrets.update(s for s in secrets if s)
    if _secrets and logging.getLogRecordFactory() is not _masked_record:
        logging.setLogRecordFactory(_masked_record)


def _masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _make_record(*args, **kwargs)
    if isinstance(record.args, tuple) and any(map(_is_sasl_exchange, record.args)):
        record.args = tuple(_HIDDEN if _is_sasl_exchange(a) else a for a in record.args)
    try:
        text = record.getMessage()
    except (TypeError, ValueError):  # a malformed call: the handler reports it, as before
        return record
    if any(secret in text for secret in _secrets):
        for secret in _secrets:
            text = text.replace(secret, MASK)
        record.msg, record.args = text, None
    return record


def _is_sasl_exchange(arg: Any) -> bool:
    # Whatever the mechanism, its tokens are nobody's business in a log.
    return type(arg).__name__.startswith("SaslAuthenticate")
