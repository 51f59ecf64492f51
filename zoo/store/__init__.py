"""The content-addressed cache under ``ZOO_HOME``: entries and refs, the artifact table, locks, pins, archives,
housekeeping and repair, the tuned-choice file. Nothing here knows the registry: it stores what it is given."""
