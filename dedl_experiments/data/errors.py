"""The single exception type raised for bad input data or options."""


class DataError(ValueError):
    """Bad input: the message names the file (or option) and what is wrong, in one line."""

    def __init__(self, message: str) -> None:
        # Callers embed exception texts and paths; keep the message on one line for logs.
        super().__init__(" ".join(str(message).splitlines()))
