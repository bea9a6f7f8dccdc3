"""Calling a KFP wrapper as a plain function, as the DAG would: every pipeline parameter the wrapper takes
and the test does not set gets the parameter table's default (pipeline/parameters.py)."""

import inspect

from pipeline.parameters import defaults


def table_defaults(function, given: dict) -> dict:
    """The table's default of each parameter of `function` that `given` leaves out."""
    table = defaults()
    return {name: table[name] for name in inspect.signature(function).parameters if name not in given and name in table}


def call_stage(function, **given):
    """`function(**given)` with the table's defaults for the parameters left out."""
    return function(**{**table_defaults(function, given), **given})
