#!/usr/bin/env bash
# The plan step of the action's pr-plan (pull-request.yml): write $OUT/plan.md
# (markdown for the PR comment) and $OUT/plan.json (the saved plan: the reviewed plan
# that the apply on merge applies), and record the step outputs `exitcode` (0 no
# changes, 2 changes, 3 unsafe changes, 1 error) and `plan-file`. It never fails by
# itself, so that the comment is posted first; the action's next steps fail on 1 or 3.
# The tool appends the plan's markdown to $GITHUB_STEP_SUMMARY itself.
#
# PLAN_MODE (from prepare.sh) says what the plan may see:
#   full               the providers' live state with the job's credentials
#   providers-changed  --refresh=false in an environment without any provider
#                      credential: the pull request's providers.yaml could point a
#                      base_url at another server or rename a credential variable.
#                      State is read with BLOCKLIST_STATE_READ_DSN (its value, not
#                      providers.yaml, says where the database is; a SELECT-only role)
#   fork               --refresh=false with no secret at all: against empty state
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

dir="${BLOCKLIST_DIR:-blocklists}"
out="${OUT:?OUT is not set}"
args=(plan -C "$dir" --out "$out/plan.json" --format markdown --detailed-exitcode)
case "${PLAN_MODE:?PLAN_MODE is not set}" in
  full)
    blocklist "${args[@]}" > "$out/plan.md"
    ;;
  providers-changed)
    KEEP_ENV=BLOCKLIST_STATE_READ_DSN run_scrubbed blocklist "${args[@]}" --refresh=false > "$out/plan.md"
    ;;
  fork)
    KEEP_ENV="" run_scrubbed blocklist "${args[@]}" --refresh=false > "$out/plan.md"
    ;;
  *)
    echo "::error::unknown PLAN_MODE $PLAN_MODE" && false
    ;;
esac
code=$?
{
  echo "exitcode=$code"
  [ ! -f "$out/plan.json" ] || echo "plan-file=$out/plan.json"
} >> "${GITHUB_OUTPUT:-/dev/null}"
case "$code" in
  0) echo "No changes." ;;
  2) echo "The plan has changes: see the pull-request comment." ;;
  3) echo "::error title=Unsafe plan::The plan crosses a safety threshold; apply refuses it unless --allow-unsafe is given." ;;
  *) echo "::error title=Plan failed::blocklist plan exited with $code (see the log above)." ;;
esac
exit 0
