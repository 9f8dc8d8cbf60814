# shellcheck shell=bash
# Helpers for the bats suites. They run in the guest (scripts/vm-run), as root,
# and need two virtio disks (vm-run --disk 1G --disk 1G): the first is split
# into two partitions, the second is used whole.

DMI_TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
# The module vm-run loaded (for --kernel native: built against that kernel).
DMI_MODULE=${VM_MODULE:-$DMI_TOP/dm-target/dm-interpose.ko}
# The hook backend the module must use: the block layer's own interposer
# when the kernel has it (the patched kernel of 'make kernel'), else a kprobe.
# shellcheck disable=SC2034 # used by the suites
# (The kernel's own symbol: the module's compat implementation has one of
# that name too, listed with "[dm_interpose]".)
if awk '$3 == "bdev_interposer_attach" && NF == 3 { found = 1 } END { exit !found }' \
	/proc/kallsyms 2>/dev/null; then
	DMI_HOOK=native
else
	DMI_HOOK=kprobe
fi
DMI_MNT=/mnt/dmi
# devno, carriers
# shellcheck source=tests/devices.bash
source "$DMI_TOP/tests/devices.bash"

# The test helper module NAME (tests/helpers/NAME) built for the running
# kernel: dmi_helper NAME prints its path (vm-run's VM_HELPERS).
dmi_helper() {
	local ko=${VM_HELPERS:-$DMI_TOP/tests/helpers}/$1/dmi_$1.ko
	[[ -f $ko ]] || die "test helper $ko not built (make module)"
	echo "$ko"
}

die() {
	echo "FAILED: $*" >&2
	return 1
}

# Run a command that must fail (a plain "! cmd" does not fail a bats test).
fails() {
	if "$@"; then
		die "'$*' succeeded, expected it to fail"
	fi
}

# Fail (not skip) when the suite is not running in a prepared guest.
dmi_require_guest() {
	[[ ${VM_GUEST:-} == 1 ]] || die "run the suites through scripts/vm-run (make check)"
	local -a disks
	read -r -a disks <<<"${VM_DISKS:-}"
	((${#disks[@]} >= 2)) || die "needs two virtio disks: vm-run --disk 1G --disk 1G"
	# shellcheck disable=SC2034 # used by the suites
	DMI_PDISK=${disks[0]}
	# shellcheck disable=SC2034 # used by the suites
	DMI_WDISK=${disks[1]}
	if [[ ! -b ${DMI_PDISK}1 ]]; then
		printf 'label: gpt\n,512M\n,\n' | sfdisk -q "$DMI_PDISK" >/dev/null
		settle 120
	fi
	[[ -b ${DMI_PDISK}1 && -b ${DMI_PDISK}2 ]] || die "cannot partition $DMI_PDISK"
	lsmod | grep -q '^dm_interpose ' || insmod "$DMI_MODULE"
	modprobe loop
	modprobe dm_snapshot
	modprobe dm_era
	modprobe dm_flakey
	modprobe dm_delay
}

# Wait until udev has processed every queued event: settle [TIMEOUT]
# (seconds, default 60). Under a slow debug guest, udevadm settle at times
# fails at once ("Failed to wait for daemon to reply: Broken pipe": udevd
# closed the control connection first); it is asked again then. A real
# timeout is not retried.
settle() {
	local i out
	for i in 1 2 3; do
		out=$(udevadm settle -t "${1:-60}" 2>&1) && return 0
		[[ $out == *"Broken pipe"* ]] || break
	done
	echo "$out" >&2
	return 1
}

sectors() { blockdev --getsz "$1"; }
diskseq_of() { cat "/sys/class/block/$(basename "$(realpath "$1")")/../diskseq" 2>/dev/null ||
	cat "/sys/class/block/$(basename "$(realpath "$1")")/diskseq"; }

# A loop device on a file in the guest's scratch space: new_loop SIZE_MB
new_loop() {
	local f
	f=$(mktemp /var/tmp/dmi-loop.XXXXXX)
	truncate -s "${1}M" "$f"
	losetup -f --show "$f"
}

# dmsetup status field N (1-based, after "<start> <len> <target>")
status_field() { dmsetup status "$1" | awk -v n="$2" '{ print $(n + 3) }'; }
redirected() { status_field "$1" 5; }
passed() { status_field "$1" 6; }

# Make a filesystem on DEV and mount it at $DMI_MNT/NAME: mkfs_mount DEV FS NAME
mkfs_mount() {
	local dev=$1 fs=$2 mnt=$DMI_MNT/$3
	case $fs in
	ext4) mkfs.ext4 -q -F "$dev" ;;
	xfs) mkfs.xfs -q -f "$dev" ;;
	*) die "unknown fs $fs" ;;
	esac
	mkdir -p "$mnt"
	mount "$dev" "$mnt"
	echo "$mnt"
}

# Write COUNT files of SIZE_KB random data under DIR and record their sums in
# DIR/../NAME.sums: write_files DIR PREFIX COUNT SIZE_KB
write_files() {
	local dir=$1 prefix=$2 count=$3 kb=$4 i
	mkdir -p "$dir"
	for ((i = 0; i < count; i++)); do
		head -c "$((kb * 1024))" /dev/urandom >"$dir/$prefix.$i"
	done
	(cd "$dir" && sha256sum "$prefix".*) >"$BATS_TEST_TMPDIR/$prefix.sums"
}

# Verify files recorded by write_files, under DIR (possibly another mount).
verify_files() {
	local dir=$1 prefix=$2
	(cd "$dir" && sha256sum --quiet -c "$BATS_TEST_TMPDIR/$prefix.sums")
}

fsck_clean() {
	local dev=$1 fs=$2
	case $fs in
	ext4) e2fsck -fn "$dev" ;;
	xfs) xfs_repair -n "$dev" ;;
	esac
}

# Create a pass-through lower device: lower_create NAME ORIG [FEATURES...]
lower_create() {
	local name=$1 orig=$2
	shift 2
	local feat=""
	(($#)) && feat=" $# $*"
	dmsetup create "$name" --table "0 $(sectors "$orig") interpose $orig$feat"
}

# Reload a device with an interpose table and resume it: lower_reload NAME ORIG [FEATURES...]
lower_reload() {
	local name=$1 orig=$2
	shift 2
	local feat=""
	(($#)) && feat=" $# $*"
	dmsetup reload "$name" --table "0 $(sectors "$orig") interpose $orig$feat" &&
		dmsetup resume "$name"
}

# Kernel log lines since the mark: dmesg_mark; ...; dmesg_since
dmesg_mark() { DMI_DMESG_MARK=$(dmesg | wc -l); }
dmesg_since() { dmesg | tail -n +"$((DMI_DMESG_MARK + 1))"; }

# Expect a dmsetup command to fail with a kernel message matching REGEX:
# expect_refused REGEX dmsetup ARGS...
expect_refused() {
	local re=$1
	shift
	dmesg_mark
	if "$@" 2>"$BATS_TEST_TMPDIR/err"; then
		die "'$*' succeeded, expected a refusal matching '$re'"
	fi
	if ! dmesg_since | grep -Eq -- "$re"; then
		echo "kernel log:" >&2
		dmesg_since >&2
		die "no kernel message matching '$re'"
	fi
}

# A steady write load on a mounted fs: files under DIR/load rewritten in a
# loop until stop_load (or dmi_cleanup): start_load DIR
start_load() {
	local dir=$1/load
	mkdir -p "$dir"
	(
		i=0
		while :; do
			dd if=/dev/urandom of="$dir/f$((i % 8))" bs=64k count=4 conv=fsync status=none || exit 1
			i=$((i + 1))
		done
	) &
	LOAD_PID=$!
}

stop_load() {
	kill "$LOAD_PID"
	wait "$LOAD_PID" 2>/dev/null || true
	LOAD_PID=
}

# Tear down everything the tests made: stop the write load, detach every
# interposer (reload pass-through), remove all DM devices, unmount, free
# loop devices.
dmi_cleanup() {
	local name table orig i
	if [[ -n ${LOAD_PID:-} ]]; then
		kill "$LOAD_PID" 2>/dev/null || true
		wait "$LOAD_PID" 2>/dev/null || true
		LOAD_PID=
	fi
	for name in $(dmsetup ls --target interpose 2>/dev/null | awk '$1 != "No" { print $1 }'); do
		table=$(dmsetup table "$name" 2>/dev/null) || continue
		if [[ $table == *attach* ]]; then
			read -r _ _ _ orig _ <<<"$table"
			dmsetup reload "$name" --table "0 $(dmsetup table "$name" | awk '{ print $2 }') interpose $orig" &&
				dmsetup resume "$name" || true
		fi
	done
	for name in $(dmsetup ls --target interpose 2>/dev/null | awk '$1 != "No" { print $1 }'); do
		dmsetup resume "$name" 2>/dev/null || true
	done
	while read -r name _; do
		[[ -n $name ]] || continue
		umount -l "$name" 2>/dev/null || true
	done < <(awk -v m="$DMI_MNT" 'index($2, m) == 1 { print $2 }' /proc/mounts | sort -r)
	for i in 1 2 3 4 5; do
		dmsetup remove_all 2>/dev/null && break
		sleep 0.2
	done
	losetup -D 2>/dev/null || true
	rm -f /var/tmp/dmi-loop.*
}

# --- torture suites (tests/8*.bats) ---

# The size of a torture run: DMI_TORTURE=long (make torture) runs the long
# variant. torture_n SHORT LONG prints the figure for this run.
torture_n() {
	if [[ ${DMI_TORTURE:-} == long ]]; then echo "$2"; else echo "$1"; fi
}

# The number of cycles of this run (DMI_TORTURE_CYCLES overrides it):
# ncycles SHORT LONG
ncycles() {
	echo "${DMI_TORTURE_CYCLES:-$(torture_n "$1" "$2")}"
}

# dmsetup, bounded: a hung call fails the test instead of the suite.
dmt() {
	timeout -k 10 120 dmsetup "$@"
}

# lower_reload with each dmsetup call bounded (dmt):
# int_reload NAME DEV [FEATURES...]
int_reload() {
	local name=$1 dev=$2 feat=""
	shift 2
	(($#)) && feat=" $# $*"
	dmt reload "$name" --table "0 $(sectors "$dev") interpose $dev$feat" &&
		dmt resume "$name"
}

# One line of figures for the results table of Documentation/torture.rst,
# on the TAP stream (scripts/torture-report collects them):
# figure CASE KEY=VALUE... (keys: cycles, bytes_verified, faults, tables, lost)
figure() {
	local c=$1
	shift
	echo "# figure: $c | $*" >&3
}

# End of a torture test: tear everything down; then the module must unload,
# which it cannot while a table, a redirect or an open of ours is left: a
# leaked reference fails the test. The next test's setup loads it again.
dmi_cleanup_unload() {
	dmi_cleanup
	settle 30 || true
	if lsmod | grep -q '^dm_interpose '; then
		rmmod dm_interpose || die "dm_interpose does not unload: a reference leaked"
	fi
}

# Send one command to the QEMU monitor of this guest (scripts/vm-run's
# vm.monitor port) and print its answer: vm_monitor "device_del disk2"
vm_monitor() {
	local p dev='' fd out=''
	for p in /sys/class/virtio-ports/*; do
		[[ $(cat "$p/name" 2>/dev/null) == vm.monitor ]] && dev=/dev/${p##*/}
	done
	[[ -n $dev ]] || die "no vm.monitor port: scripts/vm-run gives one"
	exec {fd}<>"$dev"
	printf '%s\n' "$1" >&"$fd"
	# HMP echoes the command and prompts again: read until the quiet.
	while IFS= read -r -t 2 -u "$fd" p; do out+=$p$'\n'; done
	exec {fd}>&-
	# Without the banner, and the echo of what was typed (escape sequences).
	printf '%s' "$out" | tr -d '\r' | grep -v -e $'\e' -e '^QEMU .* monitor' || true
}

# Hot-plug a new empty virtio disk of SIZE (e.g. 256M), its image a file in
# the per-run share, and print its device node: vm_hotplug_disk ID SIZE
vm_hotplug_disk() {
	local id=$1 size=$2 bus='' i
	[[ -n ${VM_HOST_SHARE:-} ]] || die "no VM_HOST_SHARE: run through scripts/vm-run"
	truncate -s "$size" "/run/vm/$id.img"
	[[ ${VM_KERNEL:-} != native* ]] || bus=,bus=hpport
	vm_monitor "drive_add 0 if=none,id=$id,file=$VM_HOST_SHARE/$id.img,format=raw,cache=unsafe" >&2
	vm_monitor "device_add virtio-blk-pci,drive=$id,id=$id,serial=$id$bus" >&2
	for ((i = 0; i < 300; i++)); do
		[[ -b /dev/disk/by-id/virtio-$id ]] && break
		sleep 0.1
	done
	[[ -b /dev/disk/by-id/virtio-$id ]] || die "hot-plugged disk $id did not appear"
	realpath "/dev/disk/by-id/virtio-$id"
}

# Unplug a disk plugged by vm_hotplug_disk (the guest's PCI hotplug ejects
# it; q35's takes 5 s) and wait until it is gone: vm_unplug_disk ID DEV
vm_unplug_disk() {
	local id=$1 dev=${2##*/} i
	vm_monitor "device_del $id" >&2
	for ((i = 0; i < 300; i++)); do
		[[ -e /sys/block/$dev ]] || return 0
		sleep 0.1
	done
	die "unplugged disk $id ($dev) is still there"
}
