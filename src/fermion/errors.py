"""The error every layer raises when a person has to act.

A ``FermionError`` carries a one-line message that names the thing (a file, a field, a device)
and what is wrong with it. The CLI prints it without a traceback and exits non-zero; the API
turns the subclasses it knows into 4xx replies.
"""


class FermionError(Exception):
    """An error with a message meant for the person who caused it."""


class KeyFormatError(FermionError):
    """Bytes that should be a key are not one we can use."""


class ServerKeyFileError(FermionError):
    """A server-key file (padded DER + address + port) is malformed."""


class DctError(FermionError):
    """A DCT image or field is the wrong size or holds something unusable."""


class DeviceError(FermionError):
    """A simulated or real device is missing, unknown or unusable."""


class NotFound(FermionError):
    """The thing a request names does not exist (the API answers 404)."""


class NotAllowed(FermionError):
    """The data's own rules forbid this change, whoever asks (the API answers 403)."""
