"""What models and backends exist: registry files and their entries, architecture and backend plugins (entry points),
presets, the catalog that resolves a name to a handle, and whether a tuned choice is valid on this machine."""
