"""Error hierarchy. Every user-facing problem is one of these, with a one-line message that names the
file/row/field and the fix. The CLI maps them to exit codes in one table (``unlearn_audit.cli.EXIT_CODES``)."""

from __future__ import annotations


class UnlearnAuditError(Exception):
    """Base class for every error this package raises on purpose."""

    def __init__(self, message: str) -> None:
        # One line, always: a multi-line message breaks CI logs and grep.
        super().__init__(" ".join(str(message).split()))


class InputError(UnlearnAuditError):
    """A data file (CSV, npz, image, dataset) is missing, unreadable or inconsistent."""


class CheckpointError(UnlearnAuditError):
    """A model file cannot be read safely, or does not match the architecture."""


class ConfigError(UnlearnAuditError):
    """An option, flag or configuration value is invalid or inconsistent with another."""


class SchemaError(UnlearnAuditError):
    """A saved result does not follow a JSON schema version this release understands."""


class ModelOutputError(UnlearnAuditError):
    """A model produced unusable output (NaN/inf logits, wrong number of classes)."""


class RemoteModelError(UnlearnAuditError):
    """A served model (an Open Inference Protocol endpoint) cannot be used as asked."""


class EndpointUnavailableError(RemoteModelError):
    """The endpoint did not answer within the timeouts and the retry budget, or refused the request."""


class EndpointProtocolError(RemoteModelError):
    """The endpoint answered, but with something an audit cannot use (malformed JSON, wrong shape, NaN)."""


class InconsistentAnswerError(RemoteModelError):
    """The endpoint gave a different answer for an input it had already answered."""


class QueryBudgetError(RemoteModelError):
    """Sending the next request would exceed the query budget (``max_queries``)."""
