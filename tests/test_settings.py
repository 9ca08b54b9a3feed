"""base.settings: a settings dataclass from a TOML table, checked from its real type hints
and the constraints declared beside each field."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest

from base.errors import ConfigError
from base.settings import check_fields, from_table, setting


@dataclass
class Example:
    count: int = setting(2, minimum=1, maximum=16)
    ratio: float = setting(0.5, minimum=0.0, maximum=1.0)
    name: str = setting("a", non_empty=True)
    mode: str = setting("x", choices=("x", "y"))
    ema: Optional[float] = setting(0.9, minimum=0.0, below=1.0)
    folder: str | None = None
    flag: bool = False
    even: int = setting(0, check=lambda n: None if n % 2 == 0 else "must be even")


def test_a_table_builds_the_dataclass_with_defaults_for_what_it_leaves_out():
    built = from_table(Example, {"count": 3, "ratio": 1, "folder": "f"}, "ex")
    assert built == Example(count=3, ratio=1.0, folder="f") and isinstance(built.ratio, float)


@pytest.mark.parametrize("table, message", [
    ({"cuont": 1}, "ex.cuont: unknown key (known: count, "),
    ({"count": 0}, "ex.count: must be at least 1, got 0"),
    ({"count": 17}, "ex.count: must be at most 16, got 17"),
    ({"count": 2.0}, "ex.count: expected an integer, got 2.0"),
    ({"count": True}, "ex.count: expected an integer, got True"),
    ({"ratio": 1.5}, "ex.ratio: must be between 0 and 1, got 1.5"),
    ({"ratio": "1"}, "ex.ratio: expected a number, got '1'"),
    ({"name": ""}, "ex.name: must not be empty, got ''"),
    ({"mode": "z"}, "ex.mode: must be one of x, y, got 'z'"),
    ({"ema": 1.0}, "ex.ema: must be less than 1, got 1.0"),
    ({"folder": 3}, "ex.folder: expected a string, got 3"),
    ({"flag": 1}, "ex.flag: expected true or false, got 1"),
    ({"even": 3}, "ex.even: must be even, got 3"),
])
def test_a_bad_value_names_its_key_the_problem_and_the_value(table, message):
    with pytest.raises(ConfigError) as caught:
        from_table(Example, table, "ex")
    assert message in str(caught.value)


def test_not_a_table_and_none_where_allowed():
    with pytest.raises(ConfigError, match="ex: expected a table, got 3"):
        from_table(Example, 3, "ex")
    built = Example(ema=None, ratio=1)
    check_fields(built, "ex")  # a dataclass built in code is checked the same way
    assert built.ema is None and built.ratio == 1.0 and isinstance(built.ratio, float)
    built.count = 99
    with pytest.raises(ConfigError, match="ex.count: must be at most 16"):
        check_fields(built, "ex")
