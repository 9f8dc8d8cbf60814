# shellcheck shell=bash
# Helpers of the boot suites (tests/boot/*.bats). They run on the host: each
# test boots guests with systemd as PID 1 (scripts/vm-run --init systemd),
# one after the other, over the same disk files and the same root (a scratch
# file: what a boot writes to /etc is there at the next), and runs a step of
# its guest script (tests/boot/*.steps) in each boot.

BOOT_TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

die() {
	echo "FAILED: $*" >&2
	return 1
}

# boot_setup NAME: the test's directory under build/ (the guest sees it: the
# host's / is its lower layer), emptied: $BOOT_DIR. The root and the disks
# of the test are files there.
boot_setup() {
	BOOT_DIR=$BOOT_TOP/build/boot/$1
	rm -rf "$BOOT_DIR"
	mkdir -p "$BOOT_DIR"
	BOOT_N=0
}

# boot_disk NAME SIZE: a disk file of the test (the next /dev/vdX, in the
# order made: vdb first)
BOOT_DISKS=()
boot_disk() {
	truncate -s "$2" "$BOOT_DIR/$1.img"
	BOOT_DISKS+=(--disk-file "$BOOT_DIR/$1.img")
}

# boot END STEPS ARGS...: one boot, ended as vm-run --end END says, running
# "STEPS ARGS..." (a guest script of tests/boot) as vm-run.service; its
# console log is $BOOT_LOG, its output $BOOT_DIR/boot-N.out (and on fd 3, the
# lines of figures: "boot:", "era:", "kernel log:", "backup:", "race:", "root:"). The first
# boot loads the tree's module (and the
# steps install it); the later ones find the installed one, as a server
# does.
#
# With BOOT_ROOT_FILE set, the guest boots from that disk root (vm-run
# --root-file) instead of the overlay, and every boot loads the tree's
# module (its /usr is the host's, read-only: nothing is installed there).
boot() {
	local end=$1 steps=$2 module=() root=(--scratch-file "$BOOT_DIR/root.img" --scratch 4G)
	shift 2
	BOOT_N=$((BOOT_N + 1))
	BOOT_LOG=$BOOT_DIR/console-$BOOT_N.log
	if [[ -n ${BOOT_ROOT_FILE:-} ]]; then
		root=(--root-file "$BOOT_ROOT_FILE")
	elif ((BOOT_N > 1)); then
		module=(--no-module)
	fi
	echo "# boot $BOOT_N: $steps $* (then: $end)" >&3
	# (bats runs tests without pipefail: vm-run's status must not be lost)
	set -o pipefail
	"$BOOT_TOP/scripts/vm-run" -q --init systemd --end "$end" "${module[@]}" \
		"${root[@]}" "${BOOT_DISKS[@]}" \
		--timeout 600 --log "$BOOT_LOG" --env "BOOT_DIR=$BOOT_DIR" \
		-- bash "$BOOT_TOP/tests/boot/$steps" "$@" 2>&1 |
		tee "$BOOT_DIR/boot-$BOOT_N.out" | { grep -E '^(boot|era|kernel log|backup|race|root):' | sed 's/^/#   /' >&3 || true; }
}

# The console log of the last boot has (no_console: has not) a line
# matching the extended regular expression.
console_has() { grep -aEq "$1" "$BOOT_LOG" || die "boot $BOOT_N's console has no line matching '$1'"; }
console_lacks() {
	local l
	if l=$(grep -aE "$1" "$BOOT_LOG"); then
		die "boot $BOOT_N's console: $l"
	fi
}

# The shutdown of the last boot removed every DM device: nothing left for
# systemd-shutdown's DM detach, and no error from it or from blkdeactivate.
clean_shutdown() {
	console_has 'All filesystems, swaps, loop devices, MD devices and DM devices detached'
	console_lacks 'Could not detach DM|Not all DM devices detached|Failed to detach DM|Failed to finalize DM|blkdeactivate.*(failed|error)'
	console_lacks 'Failed to unmount|Failed unmounting'
}

# The same for a disk root (vm-run --root-file): its /usr is the host's, over
# 9p, which systemd-shutdown runs from and cannot unmount; / is remounted
# read-only instead of unmounted. No other unmount may fail, no DM device be
# left.
clean_shutdown_root() {
	local l
	console_has "Remounting '/' read-only"
	console_has 'systemd-shutdown.*All DM devices detached'
	console_lacks 'Could not detach DM|Not all DM devices detached|Failed to detach DM|Failed to finalize DM|blkdeactivate.*(failed|error)'
	if l=$(grep -aE 'Failed to (unmount|remount)|Failed unmounting' "$BOOT_LOG" | grep -v 'Failed to unmount /usr: '); then
		die "boot $BOOT_N's console: $l"
	fi
}

# teardown: a passed test's files go (the root and disk files are sparse,
# but what the boots wrote is not); a failed test's stay for a look.
boot_teardown() {
	if [[ -n ${BOOT_DIR:-} && ${BATS_TEST_COMPLETED:-} == 1 ]]; then
		rm -rf "$BOOT_DIR"
	fi
}
