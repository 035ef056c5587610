"""User-facing errors: one line naming the input and what was expected, never a traceback."""


class UserError(Exception):
    """A mistake in the user's input (a path, a file, a flag). The CLI prints it as one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # always one line
