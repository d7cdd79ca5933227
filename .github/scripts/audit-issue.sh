#!/usr/bin/env bash
# Keep ONE open issue, labelled blocklist-audit, in step with the scheduled audit:
# findings (AUDIT_EXIT=2) open it, or update its body if it is open already; a clean
# audit (AUDIT_EXIT=0) closes it with a comment.
#
# Usage: audit-issue.sh [AUDIT_MD]        (default audit.md)
# Env:   GH_TOKEN, GH_REPO (owner/name), AUDIT_EXIT, RUN_URL (optional)
set -euo pipefail

label="blocklist-audit"
title="blocklist audit: findings"
report="${1:-audit.md}"
today="$(date -u +%Y-%m-%d)"

number="$(gh issue list --repo "$GH_REPO" --state open --label "$label" --json number,title |
  jq -r '.[0].number // empty')"

case "${AUDIT_EXIT:?AUDIT_EXIT is not set}" in
  2)
    body="$(mktemp)"
    trap 'rm -f "$body"' EXIT
    {
      echo "<!-- blocklist-audit -->"
      cat "$report"
      echo
      echo "<sub>Audit of $today${RUN_URL:+ · [workflow run]($RUN_URL)}</sub>"
    } > "$body"
    if [ -n "$number" ]; then
      gh issue edit "$number" --repo "$GH_REPO" --body-file "$body" > /dev/null
      echo "Updated issue #$number."
    else
      gh label create "$label" --repo "$GH_REPO" --force --color B60205 \
        --description "Findings of the scheduled blocklist audit" > /dev/null
      gh issue create --repo "$GH_REPO" --title "$title" --label "$label" --body-file "$body"
    fi
    ;;
  0)
    if [ -n "$number" ]; then
      gh issue comment "$number" --repo "$GH_REPO" --body "The audit of $today is clean: closing."
      gh issue close "$number" --repo "$GH_REPO"
    else
      echo "The audit is clean and no audit issue is open."
    fi
    ;;
  *)
    echo "AUDIT_EXIT=$AUDIT_EXIT: nothing to do (the audit failed)." >&2
    ;;
esac
