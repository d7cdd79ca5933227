#!/usr/bin/env bash
# The validate step of the action: blocklist validate -C $BLOCKLIST_DIR, its problems
# annotated on the diff (::error file=…,line=…). For pr-plan the lists are the pull
# request's, read with no secret in the environment (validate needs none).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

dir="${BLOCKLIST_DIR:-blocklists}"
if [ "${COMMAND:-}" = pr-plan ]; then
  run_scrubbed blocklist validate -C "$dir"
else
  blocklist validate -C "$dir"
fi
