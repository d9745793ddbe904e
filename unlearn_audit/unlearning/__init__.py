"""Method zoo: unlearning baselines behind one signature (see :func:`unlearn`)."""

from .. import remediation  # noqa: F401, E402  (registers rurk and rea)
from . import basic, zoo  # noqa: F401  (registers the methods)
from .registry import method_defaults, register_method, registered_methods, unlearn

__all__ = ["method_defaults", "register_method", "registered_methods", "unlearn"]
