"""The cyclic garbage collector paused while an analysis runs.

A large Keras model holds millions of Python objects. An analysis allocates many small
objects (records, tuples, dictionaries), and each time enough of them accumulate Python runs a
collection; the oldest generation's collections walk every object the model holds, so on a
10,000-layer model they cost more than the analysis itself and make its time grow faster than
the layers (docs/benchmarks.md). The analysis creates no reference cycles it needs collected
while it runs; whatever it leaves behind is collected once the collector resumes.
"""

from __future__ import annotations

import functools
import gc
from typing import Any, Callable, TypeVar

__all__ = ["collector_paused"]

F = TypeVar("F", bound=Callable[..., Any])


def collector_paused(function: F) -> F:
    """Run ``function`` with the cyclic collector disabled, restoring its state afterwards
    (nested calls leave it as the outermost found it).

    >>> import gc
    >>> @collector_paused
    ... def inside():
    ...     return gc.isenabled()
    >>> inside(), gc.isenabled()
    (False, True)
    """
    @functools.wraps(function)
    def paused(*args: Any, **kwargs: Any) -> Any:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return paused  # type: ignore[return-value]
