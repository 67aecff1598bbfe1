"""Errors whose message tells the operator what is wrong and how to fix it.

A job started through ``jobrunner.setup`` that ends with one of them prints
``<job>: <message>`` on one line (exit status 1) instead of a traceback.
"""

from __future__ import annotations


class OperatorError(RuntimeError):
    """The environment needs fixing (a setting, a full store); the message names what and how."""
