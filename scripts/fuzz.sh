#!/usr/bin/env bash
# Runs every Fuzz* target in the module, one at a time, for FUZZTIME each
# (a duration such as 30s or 2m, or an iteration count such as 5000x).
# Stops at the first crasher and prints where Go saved its input.
#
#   scripts/fuzz.sh [FUZZTIME]        (make fuzz FUZZTIME=1m)
set -euo pipefail

usage() { echo "usage: $0 [FUZZTIME]   (default 30s; e.g. 30s, 5m, 10000x)" >&2; exit 2; }

FUZZTIME="${1:-30s}"
[[ $# -le 1 ]] || usage
[[ "$FUZZTIME" =~ ^[0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|x)$ ]] || usage

GO="${GO:-go}"
cd "$(dirname "$0")/.."

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Packages whose test files declare a fuzz target; `go test -list` then
# names the targets exactly as the test binary sees them.
mapfile -t pkgs < <($GO list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./... |
	while read -r pkg dir files; do
		[[ -n "$files" ]] || continue
		for f in $files; do
			if grep -q '^func Fuzz' "$dir/$f"; then
				echo "$pkg"
				break
			fi
		done
	done)

if [[ ${#pkgs[@]} -eq 0 ]]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

total=0
for pkg in "${pkgs[@]}"; do
	if ! targets="$($GO test -list '^Fuzz' "$pkg" 2>&1)"; then
		echo "fuzz: cannot list the fuzz targets of $pkg:" >&2
		echo "$targets" >&2
		exit 1
	fi
	for name in $(grep -E '^Fuzz[A-Za-z0-9_]*$' <<<"$targets"); do
		total=$((total + 1))
		echo "=== $pkg $name ($FUZZTIME)"
		if ! $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
			tail -n 40 "$log"
			dir="$($GO list -f '{{.Dir}}' "$pkg")"
			saved="$(sed -n 's/.*Failing input written to \(testdata\/fuzz\/[^ ]*\).*/\1/p' "$log" | tail -n 1)"
			if [[ -n "$saved" ]]; then
				echo >&2
				echo "fuzz: $name found a crasher; its input is saved in $dir/$saved" >&2
				echo "fuzz: reproduce with: $GO test -run '^$name/$(basename "$saved")\$' $pkg" >&2
			else
				echo "fuzz: $name failed (see the output above)" >&2
			fi
			exit 1
		fi
		grep -E '^(ok|PASS)' "$log" | tail -n 1 || true
	done
done
echo "fuzz: $total targets ran for $FUZZTIME each, no crashers"
