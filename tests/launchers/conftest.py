from tests.bots.support import receiver, runtime, secret, settings

__all__ = ["receiver", "runtime", "secret", "settings"]
