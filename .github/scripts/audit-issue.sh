#!/usr/bin/env bash
# Keep ONE open issue per configuration, labelled blocklist-audit and found again by
# its hidden marker (<!-- blocklist-audit:envs/prod -->), in step with the scheduled
# audit: findings (AUDIT_EXIT=2) open it, or update its body if it is open already; a
# clean audit (AUDIT_EXIT=0) closes it with a comment.
#
# Usage: audit-issue.sh [AUDIT_MD]        (default $OUT/audit.md)
# Env:   GH_TOKEN, GH_REPO (owner/name), AUDIT_EXIT, BLOCKLIST_DIR (default
#        blocklists), RUN_URL (optional)
set -euo pipefail

dir="${BLOCKLIST_DIR:-blocklists}"
label="blocklist-audit"
marker="<!-- blocklist-audit:$dir -->"
title="blocklist audit: findings in $dir"
report="${1:-${OUT:-.}/audit.md}"
today="$(date -u +%Y-%m-%d)"

number="$(gh issue list --repo "$GH_REPO" --state open --label "$label" --json number,title,body |
  jq -r --arg marker "$marker" 'map(select(.body | contains($marker))) | .[0].number // empty')"

case "${AUDIT_EXIT:?AUDIT_EXIT is not set}" in
  2)
    body="$(mktemp)"
    trap 'rm -f "$body"' EXIT
    {
      echo "$marker"
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
      gh issue comment "$number" --repo "$GH_REPO" --body "The audit of $dir on $today is clean: closing."
      gh issue close "$number" --repo "$GH_REPO"
    else
      echo "The audit of $dir is clean and no audit issue of it is open."
    fi
    ;;
  *)
    echo "AUDIT_EXIT=$AUDIT_EXIT: nothing to do (the audit failed)." >&2
    ;;
esac
