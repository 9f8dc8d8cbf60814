# shellcheck shell=bash
# The "N passed, N failed" line that tests/run and check-lane end with.
# Usage: source scripts/lib/results.bash; counts=$(result_counts FILE)

# result_counts FILE: the numbers of FILE's last such line, "PASSED FAILED";
# fails when FILE has none.
result_counts() {
	local line f
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" 2>/dev/null | tail -n 1 || true)
	[[ -n $line ]] || return 1
	f=${line#*, }
	echo "${line%% *} ${f%% *}"
}
