"""`Case`: one layer configuration for the layer contract (tests/test_layers_contract.py, which also gathers
the `CASES` lists of tests/contract_cases_<family>.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from layer_test import CHECKS


@dataclass
class Case:
    cls: type
    kwargs: dict
    shape: object  # a shape, or a list of shapes for merge layers
    make_ref: object  # make_ref(**kwargs) -> reference_fn
    bad: tuple = ()  # input shapes that must give a ValueError naming the layer
    bad_built: tuple = ()  # ... once the layer is built for `shape` (e.g. another channel count)
    options: dict = field(default_factory=dict)
    xfail: dict = field(default_factory=dict)  # check -> (reason, strict, raises)
    checks: tuple = CHECKS
    tag: str = ""

    @property
    def id(self):
        args = ",".join(f"{k}={v}" for k, v in self.kwargs.items() if k != "seed")
        shape = "+".join(map(str, self.shape)) if isinstance(self.shape, list) else str(self.shape)
        return f"{self.cls.__name__}({args}){self.tag}@{shape}".replace(" ", "")


def _xf(reason, cls, strict=True, checks=("bad_input_built",), raises=AssertionError):
    """xfail `checks` of a case for `reason`; only `raises` counts as the expected failure."""
    return {c: (reason.format(cls=cls.__name__), strict, raises) for c in checks}
