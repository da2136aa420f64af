"""``python -m moto.server`` with one gap closed: a schedule rule never matches a bus event.

moto 5.2 gives a rule without an event pattern (a schedule rule, such as the sweep's) every
event put on its bus, and then fails the whole ``PutEvents`` call with a 500 because its target
(a Lambda function) is not one moto can deliver to. In AWS a schedule rule only fires on its
schedule. Without this, every decision the function puts on the default bus would fail.
Started by :class:`demo.emulator.MotoServer` as a script; arguments are moto.server's.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.events import models
from moto.server import main

_send = models.Rule.send_to_targets


def _send_unless_scheduled(self: Any, *args: Any, **kwargs: Any) -> None:
    if getattr(self, "scheduled_expression", None) and not self.event_pattern.dump():
        return
    _send(self, *args, **kwargs)


if __name__ == "__main__":
    models.Rule.send_to_targets = _send_unless_scheduled  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
