# shellcheck shell=bash
# Device helpers shared by the bats suites (tests/lib.bash) and the boot
# suites' guest scripts (tests/boot/guest.bash).

# devno DEV: its major:minor
devno() { local d; d=$(realpath "$1"); printf '%d:%d\n' "0x$(stat -c %t "$d")" "0x$(stat -c %T "$d")"; }

# Block devices whose udev record carries ID_FS_UUID=$1.
carriers() {
	local d
	for d in /sys/class/block/*; do
		if udevadm info --query=property --path="$d" 2>/dev/null | grep -qx "ID_FS_UUID=$1"; then
			basename "$d"
		fi
	done
}
