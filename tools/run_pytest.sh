#!/usr/bin/env bash
# Run pytest and treat "no tests collected" (exit code 5) as a failure: a check that runs nothing
# must not pass silently.
"$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests for: $*" >&2
  exit 1
fi
exit "$rc"
