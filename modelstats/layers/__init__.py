"""Built-in rules for Keras 3 layers and operations, one module per family.

Importing this package registers every rule; modelstats imports it on first use.
"""

from modelstats.layers import (  # noqa: F401 - imported for their registrations
    applications,
    attention,
    conv,
    core,
    merge,
    norm,
    ops,
    pooling,
    recurrent,
    reshaping,
)
from modelstats.layers import nested  # noqa: E402,F401
