"""Schema migrations, applied in file-name order and tracked with PRAGMA user_version."""
