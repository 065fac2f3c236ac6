"""One exception type for every user-facing problem.

The CLI prints ``DnadiffError`` as a single line ``dnadiff: error: <message>`` and exits with
status 2; anything else is a bug and keeps its traceback.
"""


class DnadiffError(Exception):
    """A problem with the user's input (file, config, checkpoint) described in one line."""


class InputFileError(DnadiffError):
    """A problem with an input file; the message always starts with the file's path."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
