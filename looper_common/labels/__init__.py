"""Labels: windows over observations, and the delayed-feedback join that writes silver examples."""

from __future__ import annotations

from looper_common._exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    join="join_feedback",
    windows="build_examples",
    days="maturity_bounds day_bounds",
    late="account_late_feedback",
)
