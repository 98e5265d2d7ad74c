"""The one exception type that bigseg raises for bad input."""


class InputError(ValueError):
    """Bad input: a path, file, array or parameter that bigseg cannot use.

    The message is one sentence that says what is wrong and how to fix it;
    the command-line interface prints it without a traceback and exits with
    status 2.
    """
