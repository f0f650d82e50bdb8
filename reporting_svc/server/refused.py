"""A request gunicorn refused, described without a byte of what the caller sent.

gunicorn's parse errors quote the text they could not parse, and that text may be a
header line holding a credential in any shape (``X-Api-Key s3cr3t``, ``Authorization
Basic YWxp…``, ``bearer<TAB>token``, all without their colon). No pattern recognises
every credential, so a refusal is logged by its kind alone: the worker's warning and any
log line given such an error hold ``[withheld]`` where gunicorn would quote the request.
"""

from __future__ import annotations

from gunicorn.http import errors

WITHHELD = "[withheld]"
# The refusals whose text is gunicorn's own words ("limit request headers fields"), never
# the caller's; every other one quotes what it could not parse.
_OWN_WORDS = (errors.LimitRequestHeaders, errors.InvalidChunkExtension)


def withheld(error: BaseException) -> BaseException:
    """``error`` as gunicorn raised it, with every text it took from the request replaced.

    A copy of the same class (gunicorn picks the status by class), so its message reads
    ``Invalid HTTP Header: '[withheld]'``: the kind of refusal, never the header line.
    """
    if not isinstance(error, errors.ParseException | errors.NoMoreData) or isinstance(
        error, _OWN_WORDS
    ):
        return error
    kind: type[BaseException] = type(error)
    copy: BaseException = kind.__new__(kind)
    copy.__dict__.update(
        {
            name: WITHHELD if isinstance(value, str | bytes) else value
            for name, value in vars(error).items()
        }
    )
    return copy
