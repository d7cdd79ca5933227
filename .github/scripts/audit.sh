#!/usr/bin/env bash
# The audit step of audit.yml: write audit.md and record the exit code as the step
# output `exitcode` (0 clean, 2 findings, 1 error). It never fails by itself: the
# issue step acts on 0 and 2, and the workflow's last step fails on anything else.
# Numbers are masked: the report goes to an issue and to the job summary.
set -uo pipefail

blocklist audit --format markdown --detailed-exitcode --mask-numbers > audit.md
code=$?
echo "exitcode=$code" >> "${GITHUB_OUTPUT:-/dev/null}"
case "$code" in
  0) echo "The audit is clean." ;;
  2) echo "::warning title=blocklist audit::The audit has findings: see the issue labelled blocklist-audit." ;;
  *) echo "::error title=Audit failed::blocklist audit exited with $code (see the log above)." ;;
esac
exit 0
