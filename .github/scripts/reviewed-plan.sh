#!/usr/bin/env bash
# Find and download the plan reviewed on the pull request that a push to the default
# branch merged (apply.sh calls it on push). Four gh calls:
#   1. gh api repos/$GH_REPO/commits/$GITHUB_SHA/pulls
#        the merged pull request whose merge commit this is (else the first merged
#        one): its number and head SHA
#   2. gh api "repos/$GH_REPO/actions/artifacts?name=blocklist-plan-SLUG-HEADSHA"
#        the newest unexpired artifact of that name (a re-run replaces an older one)
#   3. gh api repos/$GH_REPO/actions/runs/RUN
#        the run that made it must be a pull_request_target run: the base branch's
#        workflow, trusted code, not a workflow a pull request brought along
#   4. gh api repos/$GH_REPO/actions/artifacts/ID/zip
#        the artifact, unzipped into DEST (plan.json, plan.md)
#
# Usage: reviewed-plan.sh SLUG DEST
# Env:   GH_TOKEN, GH_REPO (owner/name), GITHUB_SHA
# Prints key=value lines: pr, head_sha, then artifact, run, plan (the plan file).
# Exits 3 with a reason= line when there is no reviewed plan; 1 when gh fails.
set -euo pipefail

slug="${1:?usage: reviewed-plan.sh SLUG DEST}"
dest="${2:?usage: reviewed-plan.sh SLUG DEST}"
sha="${GITHUB_SHA:?GITHUB_SHA is not set}"

absent() {
  echo "reason=$*"
  exit 3
}

pull="$(gh api "repos/$GH_REPO/commits/$sha/pulls" | jq -r --arg sha "$sha" '
  [.[] | select(.merged_at != null)]
  | (map(select(.merge_commit_sha == $sha)) + .)[0]
  | select(. != null) | "\(.number) \(.head.sha)"')"
[ -n "$pull" ] || absent "commit $sha is not the merge of a pull request (a direct push?), so nothing was reviewed"
read -r pr head_sha <<< "$pull"
echo "pr=$pr"
echo "head_sha=$head_sha"

name="blocklist-plan-$slug-$head_sha"
found="$(gh api "repos/$GH_REPO/actions/artifacts?name=$name&per_page=100" | jq -r '
  [.artifacts[] | select(.expired | not)] | sort_by(.created_at) | last
  | select(. != null) | "\(.id) \(.workflow_run.id)"')"
[ -n "$found" ] || absent "pull request #$pr has no saved plan for its head commit $head_sha (no artifact $name: its plan workflow did not run or did not finish, or the artifact expired)"
read -r id run <<< "$found"

event="$(gh api "repos/$GH_REPO/actions/runs/$run" | jq -r '.event')"
[ "$event" = pull_request_target ] ||
  absent "the artifact $name comes from a $event run (run $run), not from the pull_request_target plan workflow: it is not a reviewed plan"

mkdir -p "$dest"
gh api "repos/$GH_REPO/actions/artifacts/$id/zip" > "$dest/plan.zip"
python -m zipfile -e "$dest/plan.zip" "$dest"
[ -f "$dest/plan.json" ] || absent "the artifact $name (run $run) holds no plan.json"
echo "artifact=$name"
echo "run=$run"
echo "plan=$dest/plan.json"
