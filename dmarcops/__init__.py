"""dmarcops as a library: `import dmarcops` gives pipeline.api's functions and types (docs/api.md).

import dmarcops

report = dmarcops.plan("path/to/repo")
for item in dmarcops.classify(report):
    print(item.zone, item.name, item.type, item.change_type, item.risk.label)
print(dmarcops.render(report, "markdown"))
"""

# The surface is pipeline.api's `__all__`, listed there once: a name added to the API is part of
# `import dmarcops` without a second list to keep in step (tests/test_api.py).
from pipeline import api
from pipeline.api import *  # noqa: F403

__all__ = ["api"]
__all__ += api.__all__
