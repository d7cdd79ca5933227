# shellcheck shell=bash
# Helpers the action's scripts share (sourced, never run by itself).

# slug NAME: NAME as GitHub artifact names allow it ("envs/prod" -> "envs-prod").
slug() {
  printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '-'
}

# run_scrubbed COMMAND...: run COMMAND in a fresh environment that holds none of the
# job's secrets: only what the tool needs to run and to write GitHub Actions' files,
# plus the variables named in $KEEP_ENV (space separated). Used on a pull request's
# data whenever its providers.yaml could send credentials elsewhere, or comes from a
# fork: whatever providers.yaml names, no credential is there to be read.
run_scrubbed() {
  local name
  local -a pass=()
  # shellcheck disable=SC2206 # KEEP_ENV is a list of names, split on purpose
  local -a keep=(PATH HOME LANG LC_ALL TMPDIR RUNNER_TEMP CI NO_COLOR
    GITHUB_ACTIONS GITHUB_STEP_SUMMARY GITHUB_ACTOR GITHUB_SHA GITHUB_WORKSPACE ${KEEP_ENV:-})
  for name in "${keep[@]}"; do
    if [ -n "${!name+set}" ]; then
      pass+=("$name=${!name}")
    fi
  done
  env -i "${pass[@]}" "$@"
}

# tree_problem ROOT DIR: why the directory DIR of the checkout ROOT may not be read
# with secrets around (nothing if it may). The tool follows symbolic links, so a link
# committed in a pull request (fraud.yaml -> /proc/self/environ) would put the
# runner's environment into an error message, the log and the comment: only real
# directories and regular files are read, and no component of DIR may be a link.
tree_problem() {
  local root="$1" dir="$2" path part found
  path="$root"
  local -a parts
  IFS=/ read -r -a parts <<< "$dir"
  for part in "${parts[@]}"; do
    case "$part" in
      "" | .) continue ;;
      ..) echo "$dir leaves the checkout" && return ;;
    esac
    path="$path/$part"
    if [ -L "$path" ]; then
      echo "${path#"$root"/} is a symbolic link" && return
    fi
  done
  if [ ! -d "$path" ]; then
    echo "$dir is not a directory of the checkout" && return
  fi
  found="$(find "$path" ! -type f ! -type d -print -quit)"
  if [ -n "$found" ]; then
    echo "${found#"$root"/} is a symbolic link or special file (only regular files are read)"
  fi
}
