"""Google Calendar API v3 and Google OAuth emulation over the fake world (PROTOCOLS §1)."""
