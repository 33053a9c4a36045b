# Calendar webhooks go to a recording receiver: reuse the bots test kit's fixtures.
from tests.bots.support import receiver, runtime, settings

__all__ = ["receiver", "runtime", "settings"]
