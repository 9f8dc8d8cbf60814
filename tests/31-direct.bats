#!/usr/bin/env bats
# The direct path: in attach mode the redirect is idle (the original
# device's bios take the kernel's own path; on a bio-based original they
# come straight back), and with attach_to the bios the stack passes down to
# the lower device go to the original device without a pass through DM;
# with reads_direct, reads go there past the stack. A suspend still holds
# them, and nothing is lost when a detach or a hand-over races them.
# cost: 11

load lib

setup() {
	dmi_require_guest
}

teardown() {
	dmi_cleanup
}

# Completed reads and writes of a DM device, from its own statistics:
# dm_io NAME reads|writes
dm_io() {
	local f
	read -r -a f <"/sys/block/$(basename "$(realpath "/dev/mapper/$1")")/stat"
	case $2 in
	reads) echo "${f[0]}" ;;
	writes) echo "${f[4]}" ;;
	esac
}

# Is the kprobe hook's ftrace callback on submit_bio_noacct armed?
probe_armed() {
	grep -q '^submit_bio_noacct ' /sys/kernel/tracing/enabled_functions
}

# Write COUNT MiB of random data at MiB offset OFF of DEV with O_DIRECT and
# record its sum: put_data DEV OFF COUNT NAME
put_data() {
	head -c "$(($3 << 20))" /dev/urandom >"$BATS_TEST_TMPDIR/$4"
	dd if="$BATS_TEST_TMPDIR/$4" of="$1" bs=1M seek="$2" count="$3" oflag=direct status=none
}

# Read it back with O_DIRECT and compare: check_data DEV OFF COUNT NAME
check_data() {
	local got want
	got=$(dd if="$1" bs=1M skip="$2" count="$3" iflag=direct status=none | sha256sum)
	want=$(sha256sum <"$BATS_TEST_TMPDIR/$4")
	[[ $got == "$want" ]] || die "$4: data at $1+$2M differs"
}

@test "attach: the redirect is idle, the original's bios pass it untouched and land" {
	local dev=${DMI_PDISK}1 mnt w0 st st0 i
	mnt=$(mkfs_mount "$dev" ext4 direct)
	write_files "$mnt/pre" pre 4 256
	lower_create low "$dev" attach
	[[ $(dmsetup table low) == *" 1 attach" ]]
	[[ $(status_field low 3) == attached ]]
	udevadm settle # udev's own reads of low pass through DM
	read -r -a st0 <<<"$(dmsetup status low)"
	w0=$(dm_io low writes)
	write_files "$mnt/during" during 8 256
	sync
	# None was redirected, passed down or seen by DM: the kernel's own
	# path, as if the device were not interposed.
	read -r -a st <<<"$(dmsetup status low)"
	echo "# status before: ${st0[*]}; after: ${st[*]}"
	[[ ${st[7]} == "${st0[7]}" && ${st[8]} == "${st0[8]}" ]]
	[[ $(dm_io low writes) == "$w0" ]]
	# The kprobe hook is disarmed (from a work) while every redirect is
	# idle: no device pays for it.
	if [[ $DMI_HOOK == kprobe ]]; then
		for ((i = 0; i < 50; i++)); do probe_armed || break; sleep 0.1; done
		! probe_armed || die "the kprobe is armed while the only redirect is idle"
	fi
	# no_direct: the same table, every bio redirected through DM.
	lower_reload low "$dev" attach no_direct
	[[ $(dmsetup table low) == *" 2 attach no_direct" ]]
	[[ $DMI_HOOK != kprobe ]] || probe_armed || die "the kprobe is not armed for a busy redirect"
	read -r -a st0 <<<"$(dmsetup status low)"
	w0=$(dm_io low writes)
	write_files "$mnt/nodirect" nodirect 4 256
	sync
	read -r -a st <<<"$(dmsetup status low)"
	((st[7] > st0[7] + 4))
	(($(dm_io low writes) > w0))
	# Back to the idle redirect, then detached.
	lower_reload low "$dev" attach
	write_files "$mnt/again" again 4 256
	sync
	lower_reload low "$dev"
	for f in pre during nodirect again; do verify_files "$mnt/$f" "$f"; done
	umount "$mnt"
	fsck_clean "$dev" ext4
}

@test "attach on a bio-based original: the bios go past DM, are counted, and land" {
	local dev=${DMI_PDISK}2 sz w0 st st0
	sz=$(sectors "$dev")
	# A linear device is bio-based: its queue's freeze does not wait for
	# the bios in flight, so the redirect stays busy on the direct path.
	dmsetup create base --table "0 $sz linear $dev 0"
	lower_create low /dev/mapper/base attach
	udevadm settle
	read -r -a st0 <<<"$(dmsetup status low)"
	w0=$(dm_io low writes)
	put_data /dev/mapper/base 1 8 bb
	# Every bio was redirected and passed down (one status line: the two
	# counts of the same moment), none went through DM.
	read -r -a st <<<"$(dmsetup status low)"
	echo "# status before: ${st0[*]}; after: ${st[*]}"
	((st[7] >= st0[7] + 8))
	((st[7] - st0[7] == st[8] - st0[8]))
	[[ $(dm_io low writes) == "$w0" ]]
	check_data /dev/mapper/base 1 8 bb
	lower_reload low /dev/mapper/base
	dmsetup remove low
	dmsetup remove base
	check_data "$dev" 1 8 bb
}

@test "attach_to: the stack's bios skip the lower device, data verified" {
	local dev=${DMI_PDISK}1 sz w0 uw0 p0
	sz=$(sectors "$dev")
	lower_create low "$dev"
	dmsetup create up --table "0 $sz linear /dev/mapper/low 0"
	lower_reload low "$dev" attach_to /dev/mapper/up
	w0=$(dm_io low writes)
	uw0=$(dm_io up writes)
	p0=$(passed low)
	put_data "$dev" 1 8 a
	put_data "$dev" 20 3 b
	# Through the upper device, past the lower one, counted there.
	(($(dm_io up writes) >= uw0 + 11))
	[[ $(dm_io low writes) == "$w0" ]]
	(($(passed low) >= p0 + 11))
	check_data "$dev" 1 8 a
	check_data /dev/mapper/up 20 3 b
	lower_reload low "$dev"
	dmsetup remove up
	check_data "$dev" 1 8 a
	check_data "$dev" 20 3 b
}

# expect_held PID WHAT SUSPEND...: PID, started after the devices were
# suspended, is still running 3 s later; resume them (in reverse order) and
# wait for it.
expect_held() {
	local pid=$1 what=$2 i
	shift 2
	sleep 3
	kill -0 "$pid" || die "$what completed while $* was suspended"
	for ((i = $#; i >= 1; i--)); do dmt resume "${!i}"; done
	wait "$pid"
}

# held_write DEV SUSPEND...: a write to DEV started while the devices are
# suspended does not complete until they are resumed (in reverse order).
held_write() {
	local dev=$1 i
	shift
	for i in "$@"; do dmt suspend "$i"; done
	head -c 1M /dev/urandom >"$BATS_TEST_TMPDIR/held"
	dd if="$BATS_TEST_TMPDIR/held" of="$dev" bs=1M seek=5 count=1 oflag=direct status=none &
	expect_held $! "a write" "$@"
	check_data "$dev" 5 1 held
}

# held_read DEV SUSPEND...: as held_write, a read of the 1M at 12M of DEV,
# which holds data written before, compared once it completes.
held_read() {
	local dev=$1 i
	shift
	put_data "$dev" 12 1 toread
	for i in "$@"; do dmt suspend "$i"; done
	dd if="$dev" of="$BATS_TEST_TMPDIR/read" bs=1M skip=12 count=1 iflag=direct status=none &
	expect_held $! "a read" "$@"
	cmp -s "$BATS_TEST_TMPDIR/read" "$BATS_TEST_TMPDIR/toread" ||
		die "the held read returned other data than was written"
}

@test "a suspended device or stack holds writes with the direct path on" {
	local dev=${DMI_PDISK}1 sz
	sz=$(sectors "$dev")
	# attach: the device that holds the redirect.
	lower_create low "$dev" attach
	held_write "$dev" low
	# attach_to: the lower device (its direct path closes), the upper
	# device (DM holds the bios before they reach the lower one), both.
	lower_reload low "$dev"
	dmsetup create up --table "0 $sz linear /dev/mapper/low 0"
	lower_reload low "$dev" attach_to /dev/mapper/up
	held_write "$dev" low
	held_write "$dev" up
	held_write "$dev" up low
	# The direct path is open again after the resumes.
	local w0
	w0=$(dm_io low writes)
	put_data "$dev" 2 2 after
	[[ $(dm_io low writes) == "$w0" ]]
	check_data "$dev" 2 2 after
}

@test "reads_direct: reads skip the stack, writes go through it; refused without attach_to" {
	local dev=${DMI_PDISK}1 sz meta ur0 uw0 r0
	sz=$(sectors "$dev")
	meta=$(new_loop 32)
	lower_create low "$dev"
	dmsetup create up --table "0 $sz era $meta /dev/mapper/low 128"
	lower_reload low "$dev" attach_to /dev/mapper/up reads_direct
	[[ $(dmsetup table low) == *"reads_direct"* ]]
	uw0=$(dm_io up writes)
	put_data "$dev" 3 4 r
	(($(dm_io up writes) >= uw0 + 4))
	ur0=$(dm_io up reads)
	r0=$(redirected low)
	check_data "$dev" 3 4 r
	[[ $(dm_io up reads) == "$ur0" ]]
	# On this request-based disk the reads pass the redirect by (it is
	# idle for reads): not even redirected.
	[[ $(redirected low) == "$r0" ]] ||
		die "reads went through the redirect: $r0 -> $(redirected low)"
	# A suspend of the lower device closes the read's short cut too.
	held_read "$dev" low
	held_read "$dev" up low
	# era saw the writes: their blocks are marked in this era.
	dmsetup message up 0 checkpoint
	# Without reads_direct, reads go through the stack again.
	lower_reload low "$dev" attach_to /dev/mapper/up
	ur0=$(dm_io up reads)
	check_data "$dev" 3 4 r
	(($(dm_io up reads) > ur0))
	lower_reload low "$dev"
	expect_refused "reads_direct needs attach_to" \
		lower_reload low "$dev" attach reads_direct
	expect_refused "reads_direct needs attach_to" \
		lower_reload low "$dev" attach_to /dev/mapper/up reads_direct no_direct
	dmsetup remove up
	check_data "$dev" 3 4 r
}

@test "dmsetup --interpose: reads_direct for an era stack, off after a reload to delay" {
	local dev=${DMI_PDISK}1 sz meta
	sz=$(sectors "$dev")
	meta=$(new_loop 32)
	dmsetup create era --interpose --table "0 $sz era $meta [interpose]$dev 128"
	[[ $(dmsetup table era-interposer) == *" attach_to "*" reads_direct" ]]
	put_data "$dev" 1 2 e
	check_data "$dev" 1 2 e
	# A delay target holds reads back: reads go through it from now on.
	dmsetup reload era --interpose --table "0 $sz delay [interpose]$dev 0 0"
	dmsetup resume era
	[[ $(dmsetup table era-interposer) != *reads_direct* ]]
	[[ $(dmsetup table era-interposer) == *" attach_to "* ]]
	check_data "$dev" 1 2 e
	dmsetup remove era
	# A linear stack at another offset does not pass reads down unchanged.
	dmsetup create lin --interpose --table "0 $((sz - 8)) linear [interpose]$dev 8" 2>/dev/null &&
		die "a table shorter than the device was accepted"
	dmsetup create snap --interpose --table "0 $sz snapshot-origin [interpose]$dev"
	[[ $(dmsetup table snap-interposer) == *reads_direct* ]]
	dmsetup remove snap
	check_data "$dev" 1 2 e
}

# 20 cycles (make torture: 200); the kernel matrix's lanes run fewer
# (DMI_RACE_CYCLES, scripts/check-kernels): there the test shows that the
# path works on that kernel, the stock lane runs the 20.
@test "detach and hand-over racing the direct path lose no bio: fio verify, 20 cycles" {
	local dev=${DMI_PDISK}1 sz n load i t=$BATS_TEST_TMPDIR
	sz=$(sectors "$dev")
	n=$(ncycles "${DMI_RACE_CYCLES:-20}" 200)
	echo "# $n cycles" >&3
	lower_create low "$dev"
	lower_create real "$dev"
	# fio writes 32 MiB at random and verifies it, again and again.
	(
		k=0
		while [[ ! -e $t/stop ]]; do
			fio --name=race --filename="$dev" --rw=randwrite --bs=4k \
				--size=32M --ioengine=libaio --iodepth=16 --direct=1 \
				--verify=crc32c --verify_fatal=1 \
				--output="$t/fio.out" || exit 1
			k=$((k + 1))
			echo "$k" >"$t/fio.runs"
		done
	) &
	load=$!
	for ((i = 1; i <= n; i++)); do
		kill -0 "$load" || break
		# an attach_to stack: attach, detach
		dmt create up --table "0 $sz linear /dev/mapper/low 0"
		int_reload low "$dev" attach_to /dev/mapper/up
		int_reload low "$dev"
		dmt remove up
		# Attach mode, and LVM's hand-over: low holds the redirect in
		# attach mode; real takes it over with low stacked on it, low
		# takes it back; then low detaches.
		int_reload low "$dev" attach
		dmt suspend low
		dmt reload low --table "0 $sz linear /dev/mapper/real 0"
		dmt reload real --table "0 $sz interpose $dev 2 attach_to /dev/mapper/low"
		dmt resume real
		dmt resume low
		[[ $(status_field real 3) == attached ]]
		dmt suspend low
		dmt reload low --table "0 $sz interpose $dev 1 attach"
		dmt resume low
		[[ $(status_field low 3) == attached ]]
		int_reload low "$dev"
		echo "# cycle $i/$n, fio runs done: $(cat "$t/fio.runs" 2>/dev/null || echo 0)"
	done
	touch "$t/stop"
	wait "$load" || { cat "$t/fio.out"; die "fio failed verification"; }
	((i > n)) || die "fio ended early, after $i cycles"
	(($(cat "$t/fio.runs") >= 1))
	figure direct_race "cycles=$n" lost=0
}
