"""The one exception type that bigseg raises for bad input, and its warning type."""

import re

#: Longest message: a quoted library error (which may quote a corrupt file) is cut in the
#: middle, so the sentence keeps its start (what is wrong) and its end (how to fix it).
MAX_MESSAGE = 800


class InputError(ValueError):
    """Bad input: a path, file, array or parameter that bigseg cannot use.

    The message is one sentence that says what is wrong and how to fix it;
    the command-line interface prints it without a traceback and exits with
    status 2.  Line breaks and control characters (which a quoted library
    error or a corrupt file's bytes may bring) become spaces, so the
    message stays on one line, and an overlong one is cut in the middle.
    """

    def __init__(self, message: object = "", *args: object):
        text = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", str(message))
        if len(text) > MAX_MESSAGE:
            half = (MAX_MESSAGE - 5) // 2
            text = f"{text[:half]} ... {text[-half:]}"
        super().__init__(text, *args)


class ScaleWarning(UserWarning):
    """A voxel size that is probably wrong: in nm, in X Y Z order, or far from the file's.

    bigseg still runs with the voxel size it was given; the message names the
    values and how to correct them.
    """
