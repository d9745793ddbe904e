"""Option groups: several command-line options declared once, as the fields of a frozen dataclass, and handed
to a command as one object.

typer builds a command's options from ``inspect.signature`` of its function. :func:`with_option_groups` rewrites
that signature: every parameter annotated with an :class:`OptionGroup` subclass is replaced, in place, by the
group's fields (so ``--help`` lists them where the parameter stands), and at call time those values are packed
back into the group before the command body runs::

    @with_option_groups
    def info(model: ModelPathArg, models: ModelLoading, verbose: VerboseOpt = False) -> int:
        loaded = models.load(model, device="auto")
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar

import typer

Command = TypeVar("Command", bound=Callable[..., Any])


class OptionGroup:
    """Base of the option groups. Subclasses are frozen dataclasses whose fields are typer options
    (``Annotated[type, typer.Option(...)]`` with a default). ``HELP`` rewords a field's help for one group
    without declaring the option again (same flag, type and default)."""

    HELP: ClassVar[dict[str, str]] = {}

    def options(self) -> dict[str, Any]:
        """The group's values by field name (for the groups whose fields are the API's keyword arguments)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def _is_group(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, OptionGroup)


def _reworded(annotation: Any, help_text: str) -> Any:
    """``Annotated[T, typer.Option(..., help=old)]`` -> the same with ``help=help_text``."""
    base, *extras = typing.get_args(annotation)
    extras = [copy.copy(extra) for extra in extras]
    for extra in extras:
        if isinstance(extra, typer.models.ParameterInfo):
            extra.help = help_text
    return Annotated[(base, *extras)]  # type: ignore[valid-type]


def group_parameters(group: type[OptionGroup]) -> list[inspect.Parameter]:
    """The group's fields as keyword parameters, in declaration order, with their typer annotations."""
    hints = typing.get_type_hints(group, include_extras=True)
    params = []
    for field in dataclasses.fields(group):  # type: ignore[arg-type]
        annotation = hints[field.name]
        if field.name in group.HELP:
            annotation = _reworded(annotation, group.HELP[field.name])
        default = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        params.append(
            inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return params


def with_option_groups(function: Command) -> Command:
    """Splice each :class:`OptionGroup` parameter of ``function`` into its fields (see the module docstring)."""
    hints = typing.get_type_hints(function, include_extras=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type[OptionGroup], list[str]]] = {}
    for param in inspect.signature(function).parameters.values():
        annotation = hints.get(param.name, param.annotation)
        if _is_group(annotation):
            fields = group_parameters(annotation)
            groups[param.name] = (annotation, [f.name for f in fields])
            params += fields
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation))
    names = [p.name for p in params]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise TypeError(f"{function.__name__}: option groups repeat the parameter(s) {', '.join(clashes)}")

    @functools.wraps(function)
    def command(**values: Any) -> Any:
        for name, (group, fields) in groups.items():
            values[name] = group(**{field: values.pop(field) for field in fields})
        return function(**values)

    command.__signature__ = inspect.Signature(params, return_annotation=hints.get("return", inspect.Signature.empty))  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command  # type: ignore[return-value]
