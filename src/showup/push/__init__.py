"""Push notifications: channels that tell us a calendar changed (PROTOCOLS §1.5, §2.4).

A channel is a Google watch channel or a Microsoft Graph subscription; both live in the
``push_channels`` table and go through the same job.

- ``secrets``    channel ids (name their calendar) and tokens (HMAC of the id; Graph's
  ``clientState``)
- ``schedule``   what a notification and a finished sync do to ``next_sync_at``; when
  a channel is renewed
- ``lifecycle``  wanting a channel; replacing a lost one; stopping a calendar's channels
  on disconnect/delete
- ``job``        the ``push`` job kind: open, renew (overlapping successor), stop
- ``renewal``    renewal in place for providers that extend a channel (Graph PATCH)
- ``outcome``    what a job step reports
- ``limiter``    per-calendar token bucket over notification-requested syncs
- ``google_receiver``  checks Google's notifications
- ``graph_receiver``   checks Graph's validation requests, notifications and lifecycle
  events; the HTTP edge of both is ``api/routers/push.py``
"""
