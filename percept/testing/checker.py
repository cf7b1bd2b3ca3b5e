"""The machinery of the contract checks: the report, the error, and the checker that fills one and raises the other."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import torch

from percept.errors import first_line

ZERO_TOL = 1e-6
RTOL, ATOL = 1e-4, 1e-5


class ContractError(AssertionError):
    """A backbone, readout or distance breaks the percept contract (the message says how)."""


@dataclass
class ContractReport:
    """What a ``check_*`` function verified: the object's name and the checks that passed, in order.

    Example:
        >>> from percept.testing import check_distance
        >>> report = check_distance("l2")
        >>> report.name, "identity" in report.passed
        ('l2', True)
    """

    kind: str
    name: str
    passed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}: {len(self.passed)} checks passed ({', '.join(self.passed)})"


class Checker:
    """Collects passed checks and raises a :class:`ContractError` naming the subject on the first failure."""

    def __init__(self, kind: str, name: str) -> None:
        self.report = ContractReport(kind, name)

    def fail(self, check: str, message: str) -> NoReturn:
        """Raise :class:`ContractError`: ``<kind> <name> fails check <check>: <message>``."""
        raise ContractError(f"{self.report.kind} {self.report.name!r} fails check {check!r}: {message}")

    def ok(self, check: str) -> None:
        self.report.passed.append(check)

    def expect(self, condition: bool, check: str, message: str) -> None:
        if not condition:
            self.fail(check, message)

    def close(self, check: str, actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
        # Float32 convolutions pick algorithms by batch size: tolerances follow the values' magnitude.
        scale = max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1.0
        try:
            torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL * scale)
        except AssertionError as exc:
            self.fail(check, f"{what}: {first_line(exc)} ({summary(actual)} vs {summary(expected)})")

    def raises(self, check: str, errors: tuple[type[BaseException], ...], fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except errors as exc:
            if not str(exc).strip():
                self.fail(check, f"{what} raised {type(exc).__name__} without a message")
            return
        except Exception as exc:  # noqa: BLE001 - reported as a contract failure
            names = " or ".join(e.__name__ for e in errors)
            self.fail(check, f"{what} should raise {names}, raised {type(exc).__name__}: {exc}")
        self.fail(check, f"{what} should raise {' or '.join(e.__name__ for e in errors)}, but returned normally")


def summary(t: torch.Tensor) -> str:
    """``shape (2, 3), values [0.1, ...]``: enough of a tensor to tell what went wrong."""
    flat = t.detach().flatten()
    if flat.numel() == 0:
        return f"shape {tuple(t.shape)}, empty"
    return f"shape {tuple(t.shape)}, values {flat[:4].tolist()}{' ...' if flat.numel() > 4 else ''}"


def lookup(kind: str, subject: Any) -> tuple[str, Any]:
    """``(name, factory or instance)`` for a registered name, a factory or an instance."""
    if isinstance(subject, str):
        from percept.registry import get_registry

        return subject, get_registry().get(kind, subject).factory
    return getattr(subject, "name", None) or getattr(subject, "__name__", None) or type(subject).__name__, subject


def features(shape: Sequence[int], generator: torch.Generator, *, relu: bool = True) -> torch.Tensor:
    """Seeded random features of ``shape``, rectified by default (as a ReLU tap gives them)."""
    f = torch.randn(tuple(shape), generator=generator)
    return f.relu() if relu else f
