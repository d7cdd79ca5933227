#!/usr/bin/env bash
# The daily expiry pull request (expiry.yml): ONE open pull request per configuration,
# from the branch blocklist/expiry-<configuration>, that prunes the entries whose expiry
# has passed (`blocklist fmt --prune-only`: nothing else in the files changes) and whose
# description lists the entries expiring within $EXPIRING_WITHIN with their tickets, so
# that renewals are a review, not a surprise. Each run rebuilds the branch from the
# checked-out default branch, force-pushes it and updates the description; when nothing
# has expired any more (the pull request was merged, or the entries were renewed on the
# default branch) the pull request is closed and its branch deleted. Offline: no
# provider and no state is read.
#
# Usage: expiry.sh
# Env:   GH_TOKEN, GH_REPO (owner/name), BLOCKLIST_DIR (default blocklists), BASE_BRANCH
#        (default main), EXPIRING_WITHIN (default 14d), RUN_URL (optional),
#        GITHUB_STEP_SUMMARY (optional)
set -euo pipefail

dir="${BLOCKLIST_DIR:-blocklists}"
base="${BASE_BRANCH:-main}"
within="${EXPIRING_WITHIN:-14d}"
slug="$(printf '%s' "$dir" | tr -c 'A-Za-z0-9._-' '-')"
branch="blocklist/expiry-$slug"
marker="<!-- blocklist-expiry:$dir -->"
title="blocklist: prune expired entries ($dir)"
today="$(date -u +%Y-%m-%d)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

code=0
blocklist expiring -C "$dir" --within "$within" --format markdown --detailed-exitcode \
  > "$work/expiry.md" || code=$?
case "$code" in
  0) expired=false ;; # nothing to prune
  2) expired=true ;;
  *) exit "$code" ;;
esac
cat "$work/expiry.md" >> "${GITHUB_STEP_SUMMARY:-/dev/null}"

number="$(gh pr list --repo "$GH_REPO" --state open --head "$branch" --json number |
  jq -r '.[0].number // empty')"

if [ "$expired" = false ]; then
  if [ -n "$number" ]; then
    gh pr close "$number" --repo "$GH_REPO" --delete-branch \
      --comment "Nothing in $dir has expired any more ($today): closing."
    echo "Closed pull request #$number: nothing left to prune."
  else
    echo "Nothing in $dir has expired (the job summary lists what expires within $within)."
  fi
  exit 0
fi

git switch --quiet --force-create "$branch"
blocklist fmt -C "$dir" --prune-only | tee "$work/fmt.txt"
pruned="$(grep -c ': pruned ' "$work/fmt.txt" || true)"
git add --all -- "$dir"
if git diff --cached --quiet; then
  echo "::error title=Nothing pruned::entries of $dir have expired, but pruning changed no file."
  exit 1
fi
git -c user.name="github-actions[bot]" \
  -c user.email="41898282+github-actions[bot]@users.noreply.github.com" \
  commit --quiet -m "Prune $pruned expired blocklist entries ($dir)" \
  -m "blocklist fmt --prune-only, $today. Their expiry has passed: the providers dropped them already, or the next apply does."
gh auth setup-git
git push --quiet --force origin "HEAD:refs/heads/$branch"

body="$work/body.md"
{
  echo "$marker"
  cat "$work/expiry.md"
  echo
  echo "<sub>Rebuilt daily from $base by the expiry workflow; renew entries on $base, not on this branch${RUN_URL:+ · [workflow run]($RUN_URL)}</sub>"
} > "$body"
if [ -n "$number" ]; then
  gh pr edit "$number" --repo "$GH_REPO" --title "$title" --body-file "$body" > /dev/null
  echo "Updated pull request #$number: $pruned entries to prune."
else
  gh pr create --repo "$GH_REPO" --base "$base" --head "$branch" --title "$title" \
    --body-file "$body"
fi
