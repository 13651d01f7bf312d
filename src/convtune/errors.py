"""The one exception type users see.

Every expected failure (bad input file, missing encoder, unseen label ...) raises
`ConvtuneError` with a message that fits on one line and says what to do. The CLI prints
it as `error: <message>` and exits with status 2 instead of showing a traceback.
"""


class ConvtuneError(Exception):
    """A user-facing error: bad input, missing resource, or an impossible request."""
