"""Settings dataclasses built from TOML tables: one loader, one validator for every table.

A setting is a dataclass field whose type comes from its type hint (bool, int, float, str,
or one of them ``| None``) and whose constraints are declared once, beside it::

    @dataclass
    class DetectorConfig:
        batch_size: int = setting(8, minimum=1, maximum=16)

:func:`from_table` builds such a dataclass from a parsed table and :func:`check_fields`
checks one built in code. Errors are :class:`~base.errors.ConfigError` in the form
``table.key: problem, got value``.
"""
from __future__ import annotations

import dataclasses
import functools
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from base.errors import ConfigError

_MISSING = dataclasses.MISSING
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Rule:
    """Constraints on one setting's value (None values are not checked: None is a type choice)."""

    minimum: float | None = None  # value >= minimum
    maximum: float | None = None  # value <= maximum
    above: float | None = None  # value > above
    below: float | None = None  # value < below
    choices: tuple = ()
    non_empty: bool = False
    check: Callable[[Any], str | None] | None = None  # returns what is wrong, or None

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value``, or None."""
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}"
        if self.non_empty and not value:
            return "must not be empty"
        if not self._in_range(value):
            return f"must be {self._range_text(value)}"
        return self.check(value) if self.check is not None else None

    def _in_range(self, value: Any) -> bool:
        return ((self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)
                and (self.above is None or value > self.above) and (self.below is None or value < self.below))

    def _range_text(self, value: Any) -> str:
        """The bound ``value`` crossed ("at least 1"); a number between two bounds (a fraction,
        a distance) is given its whole range."""
        if self.minimum is not None and self.maximum is not None and isinstance(value, float):
            return f"between {self.minimum:g} and {self.maximum:g}"
        if self.minimum is not None and value < self.minimum:
            return "0 or more" if self.minimum == 0 else f"at least {self.minimum:g}"
        if self.above is not None and value <= self.above:
            return f"more than {self.above:g}"
        if self.maximum is not None and value > self.maximum:
            return f"at most {self.maximum:g}"
        return f"less than {self.below:g}"


def setting(default: Any = _MISSING, *, default_factory: Any = _MISSING, **rule: Any) -> Any:
    """A dataclass field with its constraints (the keyword arguments of :class:`Rule`)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"rule": Rule(**rule)})


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> dict[str, tuple[Any, Rule | None]]:
    """name -> (real type hint, rule) of a settings dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.metadata.get("rule")) for f in dataclasses.fields(cls)}


def _checked_type(key: str, value: Any, hint: Any) -> Any:
    """``value`` if it has the type ``hint`` says (an int is taken for a float), else ConfigError."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    base = next(t for t in options if t is not type(None))
    if base not in _TYPE_NAMES:
        raise TypeError(f"{key}: settings of type {hint} are not supported")
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, base) and (base is bool or not isinstance(value, bool)):
        return value
    raise ConfigError(f"{key}: expected {_TYPE_NAMES[base]}, got {value!r}")


def check_value(key: str, value: Any, hint: Any, rule: Rule | None) -> Any:
    """Type and constraints of one value; returns it (a float setting's int as a float)."""
    value = _checked_type(key, value, hint)
    problem = rule.problem(value) if rule is not None and value is not None else None
    if problem:
        raise ConfigError(f"{key}: {problem}, got {value!r}")
    return value


def from_table(cls: type, table: Any, prefix: str) -> Any:
    """Build the settings dataclass ``cls`` from a parsed TOML table named ``prefix``; keys
    left out keep their defaults."""
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix}: expected a table, got {table!r}")
    fields = _fields(cls)
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    values = {name: check_value(f"{prefix}.{name}", value, *fields[name]) for name, value in table.items()}
    return cls(**values)


def check_fields(settings: Any, prefix: str) -> None:
    """Check every field of a built settings dataclass (a float setting given an int gets the float)."""
    for name, (hint, rule) in _fields(type(settings)).items():
        value = getattr(settings, name)
        checked = check_value(f"{prefix}.{name}", value, hint, rule)
        if checked is not value:
            object.__setattr__(settings, name, checked)  # frozen settings too


def read_toml(path: str | Path) -> dict:
    """Parse a TOML file; a missing or malformed file is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
