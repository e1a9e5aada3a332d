"""Workflows: validated params in, :class:`~evaluation.results.EvaluationResults` out.

One module per design; the registry maps the params ``design`` key to the module's
``prepare`` (checks data, raises :class:`~evaluation.errors.InputError`) and ``run``.
A new design adds one module here and one entry below.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the registry is read by light processes (the runner, the CLI)
    from evaluation.context import RunContext
    from evaluation.results import EvaluationResults

#: design key -> module under evaluation.workflows
REGISTRY: dict[str, str] = {
    "its": "its",
    "did": "did",
    "staggered_did": "staggered",
    "profile": "profile",
    "synthetic_control": "synthetic_control",
    "power": "power",
}

#: design key -> the notebook that runs it
NOTEBOOKS: dict[str, str] = {
    "its": "its.ipynb",
    "did": "did.ipynb",
    "staggered_did": "staggered_did.ipynb",
    "profile": "profile.ipynb",
    "synthetic_control": "synthetic_control.ipynb",
    "power": "power.ipynb",
}


def _module(design: str) -> Any:
    return import_module(f"evaluation.workflows.{REGISTRY[design]}")


def prepare(ctx: RunContext) -> Any:
    """Load and check the data for ``ctx`` (fails fast on bad input)."""
    prep: Callable[[RunContext], Any] = _module(ctx.params.design).prepare  # type: ignore[attr-defined]
    return prep(ctx)


def run(ctx: RunContext) -> EvaluationResults:
    """Fit the design and return the results contract."""
    fn: Callable[[RunContext], EvaluationResults] = _module(ctx.params.design).run  # type: ignore[attr-defined]
    from evaluation.report import evidence

    # the evidence rating is derived from the design and the checks that passed, never by hand
    return evidence.attach(fn(ctx))
