"""The one exception type that bigseg raises for bad input, and its warning type."""


class InputError(ValueError):
    """Bad input: a path, file, array or parameter that bigseg cannot use.

    The message is one sentence that says what is wrong and how to fix it;
    the command-line interface prints it without a traceback and exits with
    status 2.
    """


class ScaleWarning(UserWarning):
    """A voxel size that is probably wrong: in nm, in X Y Z order, or far from the file's.

    bigseg still runs with the voxel size it was given; the message names the
    values and how to correct them.
    """
