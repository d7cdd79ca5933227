#!/usr/bin/env bash
# The apply step of apply.yml: apply what main declares, write apply-report.json,
# copy the output to the job summary, and exit with apply's own code (non-zero fails
# the run: any failed number, an unsafe plan, a held lock, an unreachable provider).
set -uo pipefail

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
blocklist apply --auto-approve --mask-numbers --report apply-report.json 2>&1 | tee "$log"
code=${PIPESTATUS[0]}

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "## blocklist apply"
    echo
    if [ "$code" -eq 0 ]; then echo "**Applied.**"; else echo "**Apply failed (exit $code).**"; fi
    echo
    echo '```'
    tail -n 200 "$log"
    echo '```'
  } >> "$GITHUB_STEP_SUMMARY"
fi
exit "$code"
