#!/usr/bin/env bash
# The audit step of the action (audit.yml): write $OUT/audit.md and record the exit
# code as the step output `exitcode` (0 clean, 2 findings, 1 error). It never fails
# by itself: the issue step acts on 0 and 2, and the action's last step fails on
# anything else. Numbers are masked: the report goes to an issue and to the job
# summary. Read-only: state through BLOCKLIST_STATE_READ_DSN, never the write DSN.
set -uo pipefail

dir="${BLOCKLIST_DIR:-blocklists}"
out="${OUT:-.}"
blocklist audit -C "$dir" --format markdown --detailed-exitcode --mask-numbers \
  --expiring-within "${EXPIRING_WITHIN:-14d}" > "$out/audit.md"
code=$?
echo "exitcode=$code" >> "${GITHUB_OUTPUT:-/dev/null}"
case "$code" in
  0) echo "The audit is clean." ;;
  2) echo "::warning title=blocklist audit::The audit of $dir has findings: see the issue labelled blocklist-audit." ;;
  *) echo "::error title=Audit failed::blocklist audit exited with $code (see the log above)." ;;
esac
exit 0
