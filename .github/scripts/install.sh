#!/usr/bin/env bash
# Install the blocklist tool from the action's own tree ($GITHUB_ACTION_PATH: this
# repository at the ref the workflow named, e.g. the base branch or a tag), never from
# the checkout being planned. Every runtime dependency is pinned by constraints.txt;
# PIP_CONSTRAINT (not only -c) pins the build backend too, in pip's isolated build.
set -euo pipefail

src="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set (run this from the action)}"
export PIP_CONSTRAINT="$src/constraints.txt"
python -m pip install --quiet --disable-pip-version-check --no-input -c "$src/constraints.txt" "$src"
