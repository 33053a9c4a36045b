"""showup: calendar integration for meeting-bot products."""

__version__ = "0.1.0"
