#!/usr/bin/env bash
# The plan step of pull-request.yml: write plan.md (markdown for the PR comment) and
# plan.json (the saved plan), and record the exit code as the step output `exitcode`
# (0 no changes, 2 changes, 3 unsafe changes, 1 error). It never fails by itself, so
# that the comment is posted first; the workflow's last step fails on 1 or 3.
# The plan's markdown also goes to $GITHUB_STEP_SUMMARY (the tool does that itself).
set -uo pipefail

blocklist plan --out plan.json --format markdown --detailed-exitcode > plan.md
code=$?
echo "exitcode=$code" >> "${GITHUB_OUTPUT:-/dev/null}"
case "$code" in
  0) echo "No changes." ;;
  2) echo "The plan has changes: see the pull-request comment." ;;
  3) echo "::error title=Unsafe plan::The plan crosses a safety threshold; apply refuses it unless --allow-unsafe is given." ;;
  *) echo "::error title=Plan failed::blocklist plan exited with $code (see the log above)." ;;
esac
exit 0
