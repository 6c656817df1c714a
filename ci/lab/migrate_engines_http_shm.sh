#!/usr/bin/env bash
# migrate_engines_http.sh with the engines' state channel on a shared-memory link
# (serve --peer-shm) instead of their own TCP: the same moves, faults and checks.
MIGRATE_LINK=shm exec bash "$(dirname "$0")/migrate_engines_http.sh"
