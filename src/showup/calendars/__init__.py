"""Connected calendars: create, update, disconnect, delete."""
