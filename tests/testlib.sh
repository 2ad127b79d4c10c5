# testlib.sh — what the shell end-to-end suites share; source it after setting
#   rs, model (absolute paths), then call testlib_init. Provides a scratch folder $tmp
# (removed on exit), expect NAME CONDITION..., failed_with STATUS WANT PATTERN (exit
# status, exactly one line on stderr in $tmp/err, and its text), and testlib_done NAME,
# which prints the closing "NAME: N passed, M failed" line and sets the exit status.
testlib_init() {
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  pass=0 fail=0
}
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -f "$tmp/err" ] && sed 's/^/     err: /' "$tmp/err" | head -5; }
expect() { # NAME CONDITION...
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
failed_with() { [ "$1" = "$2" ] && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -q -- "$3" "$tmp/err"; }
testlib_done() {
  echo "$1: $pass passed, $fail failed"
  [ "$fail" = 0 ]
}
