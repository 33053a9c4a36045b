"""Outbound webhooks: outbox, Standard Webhooks signing, delivery."""
