"""cidash.metrics.fast_constructor: the loader's objects made through an unfrozen twin of their class (then given
their own class) are the objects ``cls(...)`` makes: equal, same hash and repr, of that very class, frozen,
copied, replaced and pickled alike; classes it cannot lay out alike are returned as they are."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import dataclass, fields
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cidash.metrics import fast_constructor
from cidash.metrics.startup import FirstScript, JobStartup
from cidash.models import Job, Pipeline, Section, TraceFacts

CLASSES = [Job, Pipeline, Section, TraceFacts, JobStartup, FirstScript]
#: Field values of any kind (what the constructor never looks at): hashable ones, so the hashes compare too.
VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_the_twin_made_object_is_the_classs_own(cls: type[Any], data: st.DataObject) -> None:
    make = fast_constructor(cls)
    assert make is not cls  # (each of the loader's classes is made the fast way)
    values = [data.draw(VALUES, label=f.name) for f in fields(cls)]
    made, expected = make(*values), cls(*values)
    assert type(made) is cls and made == expected and expected == made
    assert hash(made) == hash(expected) and repr(made) == repr(expected)
    assert [getattr(made, f.name) for f in fields(cls)] == values
    name = fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, name, 1)
    assert copy.copy(made) == expected and pickle.loads(pickle.dumps(made)) == expected
    assert dataclasses.replace(made, **{name: "x"}) == dataclasses.replace(expected, **{name: "x"})
    assert isinstance(made, cls) and not hasattr(made, "__dict__")


def test_classes_it_cannot_lay_out_alike_are_returned_as_they_are() -> None:
    @dataclass(frozen=True, slots=True)
    class Base:
        a: int

    @dataclass(frozen=True, slots=True)
    class Derived(Base):
        b: int

    @dataclass(frozen=True)
    class Unslotted:
        a: int

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("a")

    for cls in (Derived, Unslotted, Checked):
        assert fast_constructor(cls) is cls
    assert fast_constructor(Base)(3) == Base(3) and type(fast_constructor(Base)(3)) is Base
