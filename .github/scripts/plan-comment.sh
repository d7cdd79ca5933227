#!/usr/bin/env bash
# Post the plan as ONE pull-request comment per configuration, updated in place on
# every push. The comment is found again by its hidden marker, which names the
# configuration's directory (<!-- blocklist-plan:envs/prod -->), among the comments
# of the bot: several configurations in one repository get one comment each.
#
# Usage: plan-comment.sh [PLAN_MD]        (default $OUT/plan.md)
# Env:   GH_TOKEN, GH_REPO (owner/name), PR_NUMBER, BLOCKLIST_DIR (default blocklists)
#        PLAN_EXIT         exit code of the plan step (empty if it did not run)
#        PLAN_MODE         full, providers-changed or fork (prepare.sh): the last two
#                          are labelled as planned without credentials
#        REFUSED           why the pull request's tree was not read (prepare.sh)
#        VALIDATE_OUTCOME  outcome of the validate step (success, failure, skipped)
#        ENVIRONMENT       the apply's environment, named in the advice
#        HEAD_SHA, RUN_URL optional, shown under the plan
#        COMMENT_AUTHOR    whose comment to update (default github-actions[bot])
set -euo pipefail

dir="${BLOCKLIST_DIR:-blocklists}"
marker="<!-- blocklist-plan:$dir -->"
plan_md="${1:-${OUT:-.}/plan.md}"
author="${COMMENT_AUTHOR:-github-actions[bot]}"
environment="${ENVIRONMENT:-blocklist-production}"
body="$(mktemp)"
trap 'rm -f "$body"' EXIT

label() {
  # shellcheck disable=SC2016 # the backquotes are markdown
  case "${PLAN_MODE:-}" in
    fork)
      printf '> [!IMPORTANT]\n> **Planned without secrets: this pull request comes from a fork.** No provider was read and no state either (`--refresh=false`, against empty state): this shows what the lists declare, not what would change. It cannot be the reviewed plan: after merge, a maintainer runs the *blocklist apply* workflow by hand, approved in the `%s` environment.\n\n' "$environment"
      ;;
    providers-changed)
      printf '> [!IMPORTANT]\n> **Planned without provider credentials: this pull request changes `%s/providers.yaml`.** A changed `base_url` or credential variable must not receive the credentials, so no provider was read (`--refresh=false`, against state alone). It cannot be the reviewed plan: after merge, a maintainer runs the *blocklist apply* workflow by hand, approved in the `%s` environment.\n\n' "$dir" "$environment"
      ;;
  esac
}

{
  echo "$marker"
  case "${PLAN_EXIT:-}" in
    0 | 2 | 3) # 3: unsafe, which the plan's markdown says in a caution block itself
      if head -n 1 "$plan_md" | grep -q '^## '; then
        head -n 1 "$plan_md"
        echo
        label
        tail -n +2 "$plan_md"
      else
        label
        cat "$plan_md"
      fi
      ;;
    "")
      if [ -n "${REFUSED:-}" ]; then
        printf '## blocklist plan: %s\n\n:x: **Not planned**: %s. Only real directories and regular files are read.\n' "$dir" "$REFUSED"
      elif [ "${VALIDATE_OUTCOME:-}" = "failure" ]; then
        # shellcheck disable=SC2016 # the backquotes are markdown
        printf '## blocklist plan: %s\n\n:x: **`blocklist validate` failed**: the problems are annotated on the changed lines (Files changed) and listed in the job log.\n' "$dir"
      else
        echo "No plan and no validation failure: nothing to comment." >&2
        exit 0
      fi
      ;;
    *)
      # shellcheck disable=SC2016 # the backquotes are markdown
      printf '## blocklist plan: %s\n\n:x: **`blocklist plan` failed** (exit %s): see the job log.\n' "$dir" "$PLAN_EXIT"
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
