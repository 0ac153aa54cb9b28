"""How a setting is declared once: its default, bounds and help, and what is made from it
(checks on construction, command-line options, Airflow trigger parameters). The values
themselves are in ``config``. Pure Python: the DAG imports it at parse time."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from musicrec.exceptions import ConfigError


@dataclass(frozen=True)
class Bounds:
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # value > minimum, not >=
    choices: tuple[str, ...] | None = None
    kind: type | None = None  # the value's type when the default is None

    def check(self, name: str, value: Any) -> None:
        if value is None:
            return
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{name} must be one of {self.choices}, not {value!r}")
        low_ok = (
            self.minimum is None
            or value > self.minimum
            or (not self.exclusive_minimum and value == self.minimum)
        )
        if not low_ok:
            sign = ">" if self.exclusive_minimum else ">="
            raise ConfigError(f"{name} must be {sign} {self.minimum:g}, not {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{name} must be <= {self.maximum:g}, not {value!r}")


def setting(default: Any, help: str, **bounds: Any) -> Any:
    """A tunable field: its default, bounds (``minimum``, ``maximum``, ``exclusive_minimum``,
    ``choices``) and help, read by ``__post_init__``, the jobs' options and the DAG's params."""
    if "choices" in bounds:
        bounds["choices"] = tuple(bounds["choices"])
    return field(default=default, metadata={"bounds": Bounds(help, **bounds)})


def same_as(cls: type, name: str) -> Any:
    """A setting declared once, in ``cls``: the same default, bounds and help here."""
    default, bounds = settings(cls)[name]
    return field(default=default, metadata={"bounds": bounds})


def settings(cls: type) -> dict[str, tuple[Any, Bounds]]:
    """``{name: (default, bounds)}`` of a config class's tunable fields, in declaration order."""
    out = {}
    for f in fields(cls):
        if "bounds" in f.metadata:
            out[f.name] = (None if f.default is MISSING else f.default, f.metadata["bounds"])
    return out


def _kind(default: Any, bounds: Bounds) -> type:
    return bounds.kind or type(default)


class Checked:
    """Base of the config classes: every setting is checked against its bounds on creation."""

    def __post_init__(self) -> None:
        for name, (_, bounds) in settings(type(self)).items():
            bounds.check(name, getattr(self, name))
        self.check()

    def check(self) -> None:
        """Rules across fields, in subclasses."""


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """One command-line option per setting of ``cls``: same default, type, choices and help."""
    group = parser.add_argument_group(cls.__name__)
    for name, (default, bounds) in settings(cls).items():
        if name in skip:
            continue
        kind = _kind(default, bounds)
        if kind is bool:
            group.add_argument(
                option(name),
                action=argparse.BooleanOptionalAction,
                default=default,
                help=bounds.help,
            )
            continue
        group.add_argument(
            option(name),
            dest=name,
            type=kind if default is not None else _optional(kind),
            default=default,
            choices=bounds.choices,
            help=f"{bounds.help} (default {default})",
        )


def _optional(kind: type) -> Any:
    """An optional setting's parser: "" or "None" (how the DAG renders an unset param) is None."""

    def parse(text: str) -> Any:
        return None if text in ("", "None") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def from_options(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """Build ``cls`` from parsed options (its settings) and ``fixed`` values (the others)."""
    values = {n: getattr(args, n) for n in settings(cls) if hasattr(args, n)}
    return cls(**{**values, **fixed})


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def param_schema(cls: type, name: str) -> dict[str, Any]:
    """Keyword arguments of an Airflow ``Param`` for one setting (JSON schema of the value)."""
    default, bounds = settings(cls)[name]
    kind = _JSON_TYPES[_kind(default, bounds)]
    schema: dict[str, Any] = {
        "default": default,
        "type": kind if default is not None else [kind, "null"],
        "description": bounds.help,
    }
    if bounds.choices is not None:
        schema["enum"] = list(bounds.choices)
    if bounds.minimum is not None:
        schema["exclusiveMinimum" if bounds.exclusive_minimum else "minimum"] = bounds.minimum
    if bounds.maximum is not None:
        schema["maximum"] = bounds.maximum
    return schema
