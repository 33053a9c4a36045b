"""Token vault, API keys, signed state, URL guard."""
