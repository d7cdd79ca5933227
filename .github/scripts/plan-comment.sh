#!/usr/bin/env bash
# Post the plan as ONE pull-request comment, updated in place on every push. The
# comment is found again by its hidden marker among the comments of the bot.
#
# Usage: plan-comment.sh [PLAN_MD]        (default plan.md)
# Env:   GH_TOKEN, GH_REPO (owner/name), PR_NUMBER,
#        PLAN_EXIT         exit code of the plan step (empty if it did not run)
#        VALIDATE_OUTCOME  outcome of the validate step (success, failure, skipped)
#        HEAD_SHA, RUN_URL optional, shown under the plan
#        COMMENT_AUTHOR    whose comment to update (default github-actions[bot])
set -euo pipefail

marker='<!-- blocklist-plan -->'
plan_md="${1:-plan.md}"
author="${COMMENT_AUTHOR:-github-actions[bot]}"
body="$(mktemp)"
trap 'rm -f "$body"' EXIT

{
  echo "$marker"
  case "${PLAN_EXIT:-}" in
    0 | 2 | 3) # 3: unsafe, which the plan's markdown says in a caution block itself
      cat "$plan_md"
      ;;
    "")
      if [ "${VALIDATE_OUTCOME:-}" != "failure" ]; then
        echo "No plan and no validation failure: nothing to comment." >&2
        exit 0
      fi
      # shellcheck disable=SC2016 # the backquotes are markdown
      printf '## blocklist plan\n\n:x: **`blocklist validate` failed**: the problems are annotated on the changed lines (Files changed) and listed in the job log.\n'
      ;;
    *)
      # shellcheck disable=SC2016 # the backquotes are markdown
      printf '## blocklist plan\n\n:x: **`blocklist plan` failed** (exit %s): see the job log.\n' "$PLAN_EXIT"
      ;;
  esac
  echo
  echo "<sub>Commit ${HEAD_SHA:-unknown}${RUN_URL:+ · [workflow run]($RUN_URL)}</sub>"
} > "$body"

# --paginate prints one JSON array per page: slurp them into one list
id="$(gh api --paginate "repos/$GH_REPO/issues/$PR_NUMBER/comments" |
  jq -rs --arg marker "$marker" --arg author "$author" '
    add // [] | map(select(.user.login == $author and (.body | contains($marker))))
    | (.[0].id // empty)')"

if [ -n "$id" ]; then
  gh api --method PATCH "repos/$GH_REPO/issues/comments/$id" -F "body=@$body" > /dev/null
  echo "Updated the plan comment ($id)."
else
  gh api --method POST "repos/$GH_REPO/issues/$PR_NUMBER/comments" -F "body=@$body" > /dev/null
  echo "Posted the plan comment."
fi
