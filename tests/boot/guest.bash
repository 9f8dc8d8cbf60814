# shellcheck shell=bash
# Guest-side helpers of the boot suites' step scripts (tests/boot/*.steps),
# which run as vm-run.service in a guest booted with systemd as PID 1.

set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=$TOP/build/lvm/bin:$PATH LVM_SUPPRESS_FD_WARNINGS=1

die() {
	echo "FAILED: $*" >&2
	exit 1
}

# The boot reached multi-user.target with no failed unit.
system_running() {
	local state
	state=$(systemctl is-system-running --wait) || true
	if [[ $state != running ]]; then
		systemctl --failed --no-pager >&2 || true
		die "the system is '$state', not 'running'"
	fi
	echo "boot: $(systemd-analyze | head -1)"
}

# devno, carriers
# shellcheck source=tests/devices.bash
source "$TOP/tests/devices.bash"
# era_blocks
# shellcheck source=scripts/lib/era.bash
source "$TOP/scripts/lib/era.bash"

# The line number in the kernel log of the first line matching ERE $1.
kmsg_line() {
	local n
	n=$(dmesg | grep -nE "$1" | head -1 | cut -d: -f1)
	[[ -n $n ]] || die "no kernel log line matches '$1'"
	echo "$n"
}

# era_current NAME: the current era of era device NAME
era_current() { dmsetup status "$1" | awk '{ print $6 }'; }

# era_written NAME META ERA: the blocks of era device NAME (metadata on META)
# written in ERA or later (ERA >= 1: a block never written is of era 0), one
# per line, from Debian's era_invalidate (thin-provisioning-tools) on a
# metadata snapshot. Taking the snapshot starts a new era.
era_written() {
	local name=$1 meta=$2 since=$3 xml
	dmsetup message "$name" 0 take_metadata_snap
	xml=$(era_invalidate --metadata-snapshot --written-since "$since" "$meta") ||
		{ dmsetup message "$name" 0 drop_metadata_snap; die "era_invalidate failed"; }
	dmsetup message "$name" 0 drop_metadata_snap
	era_blocks <<<"$xml"
}

# write_files DIR PREFIX N: N files of 1 MiB of random data, then fsync
write_files() {
	local i
	mkdir -p "$1"
	for ((i = 1; i <= $3; i++)); do
		head -c 1M /dev/urandom >"$1/$2$i"
	done
	sync -f "$1"
}
