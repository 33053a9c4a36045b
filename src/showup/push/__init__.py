"""Push notifications: channels that tell us a calendar changed (PROTOCOLS §1.5, §2.4).

- ``secrets``    channel ids (name their calendar) and tokens (HMAC of the id)
- ``schedule``   what a notification and a finished sync do to ``next_sync_at``
- ``lifecycle``  wanting a channel; stopping a calendar's channels on disconnect/delete
- ``job``        the ``push`` job kind: open, renew (overlapping), stop
- ``limiter``    per-calendar token bucket over notification-requested syncs
- ``google_receiver``  checks Google's notifications; the HTTP edge is
  ``api/routers/push.py``
"""
