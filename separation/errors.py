"""Errors the engine raises for bad input; each carries one line for the user."""

from __future__ import annotations


class SeparationError(Exception):
    """Base class: the message is a complete, user-facing sentence."""


class AudioDecodeError(SeparationError):
    """The input is not audio, or is truncated or corrupt."""


class EmptyAudioError(AudioDecodeError):
    """The input decodes to no samples at all."""


class AudioTooLongError(SeparationError):
    """The input is longer than the configured maximum duration."""


class AudioTooLargeError(SeparationError):
    """The input file is larger than the configured maximum size."""


class ModelNotInstalledError(SeparationError):
    """A model file needed for the requested stems is missing or fails its checksum."""


class UnsupportedFormatError(SeparationError):
    """An output format the encoder does not know."""
