#!/usr/bin/env bash
# The apply step of the action (apply.yml), in the protected environment:
#   push to the default branch: apply the plan reviewed on the merged pull request
#     (reviewed-plan.sh finds it) with `blocklist apply PLANFILE`, which applies it
#     only if it IS the plan now. Refused (exit 4), the job summary shows every
#     difference (`blocklist plan --compare`); absent, or made without credentials
#     (a fork, a changed providers.yaml), the summary says so and what a plan now
#     would do. Either way nothing is applied and the step fails, unless the plan now
#     has no changes (nothing to apply, e.g. a merge that only pruned expired entries
#     already expired).
#   workflow_dispatch: there is no reviewed plan; plan and apply at once
#     (--auto-approve): the approval is the environment's required reviewers.
#     ALLOW_UNSAFE=true adds --allow-unsafe (recorded with the actor in the audit log).
# Writes $OUT/apply-report.json when an apply ran; exits with apply's code.
# Env: BLOCKLIST_DIR, SLUG, OUT, ENVIRONMENT, ALLOW_UNSAFE, GITHUB_EVENT_NAME,
#      GITHUB_SHA, GITHUB_ACTOR, GH_TOKEN, GH_REPO, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT
set -uo pipefail

here="$(dirname "$0")"
dir="${BLOCKLIST_DIR:-blocklists}"
out="${OUT:?OUT is not set}"
environment="${ENVIRONMENT:-blocklist-production}"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
report="$out/apply-report.json"
log="$(mktemp)"
plan_md="$(mktemp)"
trap 'rm -f "$log" "$plan_md"' EXIT

say() { printf '%s\n' "$@" >> "$summary"; }

how_to_proceed() {
  say "" "**How to proceed**" "" \
    "- If the lists merged are those of the pull request's head and its plan is only missing (expired, cancelled, failed for a passing reason): re-run the pull request's *blocklist plan* workflow, then re-run this run." \
    "- Otherwise a maintainer runs the *blocklist apply* workflow by hand (Actions → blocklist apply → Run workflow, on the default branch): it plans and applies at once, after a required reviewer of the \`$environment\` environment approves. Review the plan above first."
}

# apply ARGS...: blocklist apply with the report and masked numbers; its exit code
run_apply() {
  blocklist apply -C "$dir" --mask-numbers --report "$report" "$@" 2>&1 | tee "$log"
  local code=${PIPESTATUS[0]}
  echo "exitcode=$code" >> "${GITHUB_OUTPUT:-/dev/null}"
  [ ! -f "$report" ] || echo "report-file=$report" >> "${GITHUB_OUTPUT:-/dev/null}"
  return "$code"
}

show_log() {
  say "" '```'
  tail -n 200 "$log" >> "$summary"
  say '```'
}

if [ "${GITHUB_EVENT_NAME:-}" = workflow_dispatch ]; then
  args=(--auto-approve)
  how="planned and applied at once"
  if [ "${ALLOW_UNSAFE:-false}" = true ]; then
    args+=(--allow-unsafe)
    how="$how with **--allow-unsafe**"
  fi
  say "## blocklist apply: $dir" "" "Run by hand by ${GITHUB_ACTOR:-unknown}, approved in the \`$environment\` environment: $how (no reviewed plan)."
  run_apply "${args[@]}"
  code=$?
  if [ "$code" -eq 0 ]; then say "" "**Applied.**"; else say "" "**Apply failed (exit $code).**"; fi
  show_log
  exit "$code"
fi

if [ "${ALLOW_UNSAFE:-false}" = true ]; then
  echo "::warning::allow-unsafe applies to a manual dispatch only: a merge applies the reviewed plan as it is"
fi

found="$(bash "$here/reviewed-plan.sh" "${SLUG:?SLUG is not set}" "$out/reviewed")"
status=$?
pr="" head_sha="" plan="" reason="" artifact=""
while IFS='=' read -r key value; do
  case "$key" in
    pr) pr="$value" ;;
    head_sha) head_sha="$value" ;;
    plan) plan="$value" ;;
    artifact) artifact="$value" ;;
    reason) reason="$value" ;;
  esac
done <<< "$found"

if [ "$status" -eq 0 ] && [ "$(jq -r '.refreshed' "$plan")" = false ]; then
  status=3
  reason="the plan saved on pull request #$pr was made without credentials (--refresh=false: a fork's pull request, or one that changes providers.yaml), so it cannot be the reviewed plan"
fi

if [ "$status" -ne 0 ]; then
  [ "$status" -eq 3 ] || reason="the reviewed plan could not be fetched (reviewed-plan.sh exited $status: see the log)"
  # (GITHUB_STEP_SUMMARY empty: the summary gets the plan below our heading, not above it)
  GITHUB_STEP_SUMMARY="" blocklist plan -C "$dir" --mask-numbers --format markdown \
    --detailed-exitcode > "$plan_md" 2>> "$log"
  planned=$?
  if [ "$planned" -eq 0 ]; then # nothing to apply: nothing unreviewed can be applied either
    echo "No reviewed plan ($reason), and the plan of this commit has no changes."
    say "## blocklist apply: $dir" "" "No reviewed plan (${reason}), and nothing to apply: the plan of this commit has no changes."
    echo "exitcode=0" >> "${GITHUB_OUTPUT:-/dev/null}"
    exit 0
  fi
  echo "::error title=Not applied::No reviewed plan: $reason."
  say "## blocklist apply: $dir" "" "> [!CAUTION]" "> **Nothing was applied: there is no reviewed plan to apply.** ${reason^}." ""
  if [ "$planned" -eq 2 ] || [ "$planned" -eq 3 ]; then
    say "What a plan of this commit would do (not applied):" "" "$(cat "$plan_md")"
  else
    say "_blocklist plan failed (exit $planned): see the log._"
    cat "$log"
  fi
  how_to_proceed
  echo "exitcode=4" >> "${GITHUB_OUTPUT:-/dev/null}"
  exit 1
fi

echo "Applying the plan reviewed on pull request #$pr (commit $head_sha, artifact $artifact)."
run_apply "$plan"
code=$?
case "$code" in
  0)
    say "## blocklist apply: $dir" "" "**Applied** the plan reviewed on #$pr (commit \`$head_sha\`)."
    show_log
    ;;
  4)
    echo "::error title=Not applied::The plan now differs from the plan reviewed on #$pr: see the job summary."
    say "## blocklist apply: $dir" "" "> [!CAUTION]" "> **Nothing was applied: the plan at merge differs from the plan reviewed on #$pr** (commit \`$head_sha\`). Every difference, change by change:" ""
    blocklist plan -C "$dir" --compare "$plan" --format markdown --mask-numbers
    how_to_proceed
    ;;
  *)
    say "## blocklist apply: $dir" "" "**Apply failed (exit $code)** (the plan reviewed on #$pr, commit \`$head_sha\`)."
    show_log
    ;;
esac
exit "$code"
