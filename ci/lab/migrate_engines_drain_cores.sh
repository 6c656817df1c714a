#!/usr/bin/env bash
# migrate_engines_drain.sh with both engines on two cores: A's connections leave from
# both of its cores, and every core of B takes A's address over (answers ARP for it).
DRAIN_CORES=2 exec bash "$(dirname "$0")/migrate_engines_drain.sh"
