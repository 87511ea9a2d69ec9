"""Exceptions raised for people: each message names what was wrong and what was expected."""


class SescratchError(Exception):
    """Base class for sescratch's own errors (bad data files, bad options, bad checkpoints)."""


class UsageError(SescratchError):
    """A command-line or configuration mistake: the CLI prints it and exits with status 2."""


class DataError(SescratchError):
    """A dataset or checkpoint file is missing, corrupt or not in the expected format."""
