"""Tests for showup.meetings: corpus cases, provider payloads, unit and property tests."""
