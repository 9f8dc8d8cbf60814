#!/usr/bin/env bats
# Faults under an attached interposer: the original disk unplugged (QEMU
# monitor), its loop device detached, a failing dm-flakey below it, memory
# pressure in a memory cgroup. No oops, no hang (every wait is bounded), I/O
# fails with EIO where the device fails, data verified where it does not,
# and the module unloads after each test (no leaked reference).
# cost: 4

load lib

setup() {
	dmi_require_guest
	modprobe dm_flakey
}

teardown() {
	if [[ -n ${LOAD_PID:-} ]]; then
		kill "$LOAD_PID" 2>/dev/null || true
		wait "$LOAD_PID" 2>/dev/null || true
		LOAD_PID=
	fi
	if [[ -n ${CG:-} && -d $CG ]]; then
		echo 0 >"$CG/cgroup.freeze" 2>/dev/null || true
		while read -r p; do kill "$p" 2>/dev/null || true; done <"$CG/cgroup.procs"
		sleep 0.5
		rmdir "$CG" 2>/dev/null || true
	fi
	dmi_cleanup_unload
}

# lower_reload with every dmsetup call bounded: reload_bounded NAME ORIG [FEATURES...]
reload_bounded() {
	local name=$1 orig=$2
	shift 2
	local feat=""
	(($#)) && feat=" $# $*"
	timeout 60 dmsetup reload "$name" --table "0 $(sectors "$orig") interpose $orig$feat" &&
		timeout 60 dmsetup resume "$name"
}

# A load that keeps writing until it fails or is stopped, recording the
# errors it gets: unplug_load DIR
unplug_load() {
	(
		i=0
		while timeout 30 dd if=/dev/urandom of="$1/f$((i % 4))" bs=64k count=4 \
			oflag=direct status=none 2>>"$BATS_TEST_TMPDIR/load.err"; do
			i=$((i + 1))
		done
	) &
	LOAD_PID=$!
}

# unplug_case MODE: MODE attach or attach_to
unplug_case() {
	local mode=$1 id dev mnt sz i
	id=hp$RANDOM
	dev=$(vm_hotplug_disk "$id" 256M)
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" ext4 "$id")
	write_files "$mnt/static" static 4 64
	lower_create low "$dev"
	if [[ $mode == attach_to ]]; then
		dmsetup create up --table "0 $sz linear /dev/mapper/low 0"
		lower_reload low "$dev" attach_to /dev/mapper/up
	else
		lower_reload low "$dev" attach
	fi
	[[ $(status_field low 3) == attached ]]
	unplug_load "$mnt"
	sleep 1
	# attach: the redirect is idle, the load's bios go past it uncounted.
	if [[ $mode == attach_to ]]; then
		(($(redirected low) > 0)) || die "no bio redirected before the unplug"
	fi
	dmesg_mark
	vm_unplug_disk "$id" "$dev"
	# The load stops on its own, with an I/O error, not a hang.
	for ((i = 0; i < 300; i++)); do
		kill -0 "$LOAD_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$LOAD_PID" 2>/dev/null && die "the write load still runs 30 s after the unplug"
	wait "$LOAD_PID" || true
	LOAD_PID=
	grep -q "Input/output error" "$BATS_TEST_TMPDIR/load.err" ||
		{ cat "$BATS_TEST_TMPDIR/load.err" >&2; die "the load saw no EIO"; }
	# The interposer detaches itself...
	for ((i = 0; i < 100; i++)); do
		[[ $(status_field low 3) == gone ]] && break
		sleep 0.1
	done
	[[ $(status_field low 3) == gone ]] || die "state $(status_field low 3), not gone"
	dmesg_since | grep -q "has gone away, detaching" || die "no kernel message about the detach"
	# ...a new attach is refused with a message...
	expect_refused "Cannot (find|open) original device" \
		dmsetup reload low --table "0 $sz interpose $dev 1 attach"
	# ...and the stack is removed with plain removes, the fs unmounted.
	[[ $mode != attach_to ]] || timeout 30 dmsetup remove up
	timeout 30 dmsetup remove low
	timeout 30 umount "$mnt"
	figure "disk unplugged ($mode)" faults=1 lost=0
}

@test "a disk unplugged under load while attached: EIO, no hang, detaches itself, plain remove" {
	unplug_case attach
}

@test "a disk unplugged under load while attached through an upper device" {
	unplug_case attach_to
}

# The table is loaded while the disk is there; the disk goes before the
# resume that would attach. The resume fails with a message, and nothing is
# left attached or open (the module unloads after the test).
@test "a disk unplugged between the load of an attach table and its resume: refused" {
	local id dev sz mnt
	id=hp$RANDOM
	dev=$(vm_hotplug_disk "$id" 64M)
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" ext4 "$id")
	write_files "$mnt/static" static 2 64
	lower_create low "$dev"
	timeout 60 dmsetup reload low --table "0 $sz interpose $dev 1 attach"
	vm_unplug_disk "$id" "$dev"
	expect_refused "has gone away, cannot attach" timeout 60 dmsetup resume low
	[[ $(status_field low 3) == gone ]] || die "state $(status_field low 3), not gone"
	timeout 30 dmsetup remove low
	timeout 30 umount "$mnt"
	figure "disk unplugged before the attach" faults=1 lost=0
}

@test "its loop device detached while attached: I/O goes on, the loop is freed after teardown" {
	local loop mnt n name
	loop=$(new_loop 256)
	name=${loop##*/}
	mnt=$(mkfs_mount "$loop" ext4 loopfs)
	lower_create low "$loop" attach no_direct
	write_files "$mnt/before" before 8 64
	# Busy: losetup -d only marks it to be cleared on its last close.
	losetup -d "$loop"
	[[ $(cat "/sys/block/$name/loop/autoclear") == 1 ]]
	write_files "$mnt/after" after 8 64
	sync
	n=$(redirected low)
	((n > 0)) || die "no bio redirected"
	echo 3 >/proc/sys/vm/drop_caches
	verify_files "$mnt/before" before
	verify_files "$mnt/after" after
	lower_reload low "$loop"
	dmsetup remove low
	umount "$mnt"
	# Our open of it was the last but the fs's: the loop device is cleared.
	for ((i = 0; i < 50; i++)); do
		[[ -e /sys/block/$name/loop/backing_file ]] || break
		sleep 0.1
	done
	[[ ! -e /sys/block/$name/loop/backing_file ]] || die "$loop still bound: a reference leaked"
	figure "loop device detached" faults=1 bytes_verified=$((16 * 64 * 1024)) lost=0
}

@test "a failing dm-flakey below the interposer: EIO through the stack, data intact once it is up" {
	local sz good
	sz=$(sectors "$DMI_WDISK")
	dmsetup create fl --table "0 $sz flakey $DMI_WDISK 0 60 0"
	dd if=/dev/urandom of="$BATS_TEST_TMPDIR/data" bs=1M count=8 status=none
	dd if="$BATS_TEST_TMPDIR/data" of=/dev/mapper/fl bs=1M oflag=direct status=none
	good=$(sha256sum <"$BATS_TEST_TMPDIR/data")
	lower_create low /dev/mapper/fl attach
	# Down: every read and write of the original fails.
	dmsetup reload fl --table "0 $sz flakey $DMI_WDISK 0 0 60"
	dmsetup resume fl
	local n0
	n0=$(redirected low)
	timeout 30 dd if=/dev/mapper/fl of=/dev/null bs=4k count=1 iflag=direct status=none 2>"$BATS_TEST_TMPDIR/r.err" && die "a read of a failing device succeeded"
	grep -q "Input/output error" "$BATS_TEST_TMPDIR/r.err" || die "read: $(cat "$BATS_TEST_TMPDIR/r.err")"
	timeout 30 dd if=/dev/zero of=/dev/mapper/fl bs=4k count=1 seek=4096 oflag=direct status=none 2>"$BATS_TEST_TMPDIR/w.err" && die "a write to a failing device succeeded"
	grep -q "Input/output error" "$BATS_TEST_TMPDIR/w.err" || die "write: $(cat "$BATS_TEST_TMPDIR/w.err")"
	(($(redirected low) >= n0 + 2)) || die "the failing I/O did not go through the interposer"
	# A detach and a re-attach while it fails.
	reload_bounded low /dev/mapper/fl
	reload_bounded low /dev/mapper/fl attach
	# Up again: the data written before reads back whole through the stack.
	dmsetup reload fl --table "0 $sz flakey $DMI_WDISK 0 60 0"
	dmsetup resume fl
	[[ $(head -c 8M /dev/mapper/fl | sha256sum) == "$good" ]] || die "data changed"
	dd if=/dev/mapper/fl of=/dev/null bs=1M count=8 iflag=direct status=none
	(($(passed low) > 0))
	lower_reload low /dev/mapper/fl
	dmsetup remove low
	dmsetup remove fl
	figure "dm-flakey below fails" faults=2 bytes_verified=$((8 << 20)) lost=0
}

@test "memory pressure: writers in a 16M memory cgroup while attaching and detaching" {
	local mnt cycles runs=0 events
	cycles=$(torture_n 5 50)
	mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
	grep -qw memory /sys/fs/cgroup/cgroup.controllers || die "no memory controller"
	echo +memory >/sys/fs/cgroup/cgroup.subtree_control
	CG=/sys/fs/cgroup/dmi-pressure
	mkdir -p "$CG"
	echo 16M >"$CG/memory.max"
	mnt=$(mkfs_mount "${DMI_PDISK}1" ext4 mem)
	lower_create low "${DMI_PDISK}1"
	(
		for ((i = 1; i <= cycles; i++)); do
			reload_bounded low "${DMI_PDISK}1" attach || exit 1
			sleep 0.5
			reload_bounded low "${DMI_PDISK}1" || exit 1
			echo "$i" >"$BATS_TEST_TMPDIR/cycles"
		done
	) &
	LOAD_PID=$!
	# Buffered writers twice the cgroup's memory, each block read back and
	# checked, inside the cgroup, until the cycles are done.
	while kill -0 "$LOAD_PID" 2>/dev/null; do
		(
			echo "$BASHPID" >"$CG/cgroup.procs"
			exec timeout 300 fio --directory="$mnt" --size=16M --bs=64k --rw=randwrite \
				--ioengine=psync --numjobs=2 --verify=crc32c --verify_fatal=1 \
				--verify_backlog=64 --do_verify=1 --name=pressure \
				--output="$BATS_TEST_TMPDIR/fio.out"
		) || { cat "$BATS_TEST_TMPDIR/fio.out" >&2; die "fio verify failed under memory pressure"; }
		runs=$((runs + 1))
	done
	wait "$LOAD_PID" || die "an attach/detach cycle failed under memory pressure"
	LOAD_PID=
	(($(cat "$BATS_TEST_TMPDIR/cycles") == cycles))
	events=$(awk '$1 == "max" { print $2 }' "$CG/memory.events")
	((events > 0)) || die "the cgroup never hit its limit (memory.events max 0)"
	dmsetup remove low
	umount "$mnt"
	fsck_clean "${DMI_PDISK}1" ext4
	figure "memory cgroup pressure" cycles="$cycles" bytes_verified=$((runs * 32 << 20)) \
		faults="$events" lost=0
}
