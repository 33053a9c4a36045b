"""Storage: models, engine and session factories, migrations."""
