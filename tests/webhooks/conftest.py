"""Webhook tests run against a recording receiver (see ``support.py``)."""

from tests.webhooks.support import receiver, resolver, runtime, settings

__all__ = ["receiver", "resolver", "runtime", "settings"]
