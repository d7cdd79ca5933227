#!/usr/bin/env bash
# The first step of every command of the action: where its files go, and for pr-plan
# how far the pull request is trusted. Step outputs:
#   slug      the configuration directory as artifact names allow it
#   out       a fresh directory for plan.json, plan.md, audit.md, apply-report.json
#   artifact  pr-plan: blocklist-plan-<slug>-<head SHA>, the reviewed plan's name
#   mode      pr-plan: full              same repository, providers.yaml as on the base
#                      providers-changed providers.yaml differs from the base's (or the
#                                        base has none): no provider credential
#                      fork              a fork's pull request: no secret at all
#   refused   pr-plan: why the pull request's tree is not read (then exit 1)
# Env: COMMAND, BLOCKLIST_DIR, WORK_DIR, BASE_DIR (workspace-relative), HEAD_REPO,
#      HEAD_SHA, GITHUB_REPOSITORY, RUNNER_TEMP, GITHUB_OUTPUT.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

case "${COMMAND:?COMMAND is not set}" in
  validate | pr-plan | apply | audit) ;;
  *) echo "::error::unknown command '$COMMAND' (validate, pr-plan, apply or audit)" && exit 1 ;;
esac
dir="${BLOCKLIST_DIR:-blocklists}"
name="$(slug "$dir")"
out="${RUNNER_TEMP:?RUNNER_TEMP is not set}/blocklist/$name"
rm -rf "$out" && mkdir -p "$out"
output() { echo "$1=$2" >> "${GITHUB_OUTPUT:-/dev/null}"; }
output slug "$name"
output out "$out"

[ "$COMMAND" = pr-plan ] || exit 0

workspace="${GITHUB_WORKSPACE:-$PWD}"
within() { case "$1" in /*) echo "$1" ;; *) echo "$workspace/$1" ;; esac }
pr_tree="$(within "${WORK_DIR:-.}")"
base_tree="$(within "${BASE_DIR:-.blocklist-base}")"
output artifact "blocklist-plan-$name-${HEAD_SHA:?HEAD_SHA is not set}"

problem="$(tree_problem "$pr_tree" "$dir")"
problem="${problem//[$'\r\n']/ }" # a file name is the pull request's: one line only
if [ -n "$problem" ]; then
  output refused "$problem"
  echo "::error title=Not planned::The pull request's $dir is not read: $problem."
  exit 1
fi

if [ -z "${HEAD_REPO:-}" ] || [ "$HEAD_REPO" != "${GITHUB_REPOSITORY:-}" ]; then
  mode=fork
  echo "::notice title=Planned without secrets::A fork's pull request: validated and planned with --refresh=false, with no credential and no state."
elif [ ! -f "$base_tree/$dir/providers.yaml" ] ||
  ! cmp -s "$base_tree/$dir/providers.yaml" "$pr_tree/$dir/providers.yaml"; then
  mode=providers-changed
  echo "::notice title=Planned without provider credentials::$dir/providers.yaml differs from the base branch's: planned with --refresh=false (a changed base_url or credential variable must not receive the credentials)."
else
  mode=full
fi
output mode "$mode"
