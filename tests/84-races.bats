#!/usr/bin/env bats
# Torture: races. Concurrent dmsetup calls on one attached stack (attach and
# detach, suspend and reload of the upper device, messages, status reads,
# remove attempts) under a checksummed write load; attach racing with
# fsfreeze, with and without the freeze feature; module unload attempts
# while a table exists and while attached. Every command is bounded by a
# timeout: a hang fails the test. Cycles: torture_n (DMI_TORTURE=long), or
# DMI_TORTURE_CYCLES.
# cost: 8

load lib

setup() {
	dmi_require_guest
	BG_PIDS=()
	SUM_PID=
	# The sysrq 'w' dump of a hang needs it; the guest's default may mask it.
	DMI_SYSRQ=$(cat /proc/sys/kernel/sysrq)
}

teardown() {
	local pid
	touch "$BATS_TEST_TMPDIR/load.stop"
	for pid in "${BG_PIDS[@]}" ${SUM_PID:-}; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${BG_PIDS[@]}" ${SUM_PID:-}; do
		wait "$pid" 2>/dev/null || true
	done
	BG_PIDS=()
	SUM_PID=
	if [[ -n ${DMI_SYSRQ:-} ]]; then
		echo "$DMI_SYSRQ" >/proc/sys/kernel/sysrq
	fi
	# A device a race left suspended would block the clean-up.
	dmsetup resume up 2>/dev/null || true
	dmsetup resume low 2>/dev/null || true
	timeout 30 fsfreeze -u "$DMI_MNT/race" 2>/dev/null || true
	dmi_cleanup_unload
}

# Report a hang: the blocked tasks' stacks into the kernel log, and the log.
hang_report() {
	echo 1 >/proc/sys/kernel/sysrq
	echo w >/proc/sysrq-trigger
	sleep 1
	dmesg | tail -n 200 >&2
	die "$*"
}

# Wait for PID at most SECONDS; its exit status, or a hang report:
# wait_bounded PID SECONDS WHAT
wait_bounded() {
	local pid=$1 end=$((SECONDS + $2))
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS < end)) || hang_report "$3: still running after $2 s"
		sleep 0.5
	done
	wait "$pid"
}

# A checksummed write load: files f0..f31 under DIR rewritten in a loop with
# random data (64 to 256 KiB), each fsynced before the checksum of what was
# written is logged to $BATS_TEST_TMPDIR/load.sums (on tmpfs), until
# sum_load_stop: sum_load_start DIR
sum_load_start() {
	local dir=$1
	mkdir -p "$dir"
	: >"$BATS_TEST_TMPDIR/load.sums"
	rm -f "$BATS_TEST_TMPDIR/load.stop"
	(
		i=0
		blk=$BATS_TEST_TMPDIR/load.blk
		while [[ ! -e $BATS_TEST_TMPDIR/load.stop ]]; do
			f=f$((i % 32))
			head -c $(((i % 4 + 1) * 65536)) /dev/urandom >"$blk"
			dd if="$blk" of="$dir/$f" bs=64k conv=fsync status=none || exit 1
			echo "$(sha256sum <"$blk" | cut -d' ' -f1)  $f" >>"$BATS_TEST_TMPDIR/load.sums"
			i=$((i + 1))
		done
	) 3>&- &
	SUM_PID=$!
}

# Files the load has written so far.
sum_load_count() {
	wc -l <"$BATS_TEST_TMPDIR/load.sums"
}

# Wait (at most 60 s) until the load has written another file: I/O works.
sum_load_moves() {
	local n0 end=$((SECONDS + 60))
	n0=$(sum_load_count)
	while (($(sum_load_count) <= n0)); do
		kill -0 "$SUM_PID" 2>/dev/null || die "the write load died"
		((SECONDS < end)) || hang_report "the write load is stuck ($1)"
		sleep 0.2
	done
}

sum_load_stop() {
	touch "$BATS_TEST_TMPDIR/load.stop"
	wait_bounded "$SUM_PID" 120 "the write load" || die "the write load failed (I/O error)"
	SUM_PID=
}

# Check the last version of every file of the load, and the static files,
# from the disk (page cache dropped): sets CHECKED (bytes) and LOST (files
# that do not match): sum_load_verify MNT
sum_load_verify() {
	local mnt=$1 final=$BATS_TEST_TMPDIR/load.final
	awk '{ last[$2] = $0 } END { for (f in last) print last[f] }' "$BATS_TEST_TMPDIR/load.sums" >"$final"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	LOST=$( (cd "$mnt/load" && sha256sum -c "$final" 2>&1) | grep -c ': FAILED' || true)
	verify_files "$mnt/static" static || LOST=$((LOST + 1))
	CHECKED=$({
		stat -c %s "$mnt"/static/static.*
		awk '{ print $2 }' "$final" | (cd "$mnt/load" && xargs stat -c %s)
	} | awk '{ s += $1 } END { print s }')
}

# Kernel problems logged since dmesg_mark: none allowed.
no_kernel_warnings() {
	if dmesg_since | grep -E "WARNING|BUG|Oops|INFO: task .* blocked|KASAN|leak" >&2; then
		die "kernel warnings (above)"
	fi
}

# --- the loops of the concurrent dmsetup test; each runs N iterations and
# counts its calls in $BATS_TEST_TMPDIR/<name>.{ok,fail} ---

# Attach (to the upper device) and detach the lower device.
loop_attach() {
	local dev=$1 n=$2 i ok=0 fail=0
	for ((i = 1; i <= n; i++)); do
		if int_reload low "$dev" attach_to /dev/mapper/up; then ok=$((ok + 1)); else fail=$((fail + 1)); fi
		if int_reload low "$dev"; then ok=$((ok + 1)); else fail=$((fail + 1)); fi
	done
	echo "$ok" >"$BATS_TEST_TMPDIR/attach.ok"
	echo "$fail" >"$BATS_TEST_TMPDIR/attach.fail"
}

# Suspend and resume the upper device; every other time reload it (the same
# table) instead.
loop_upper() {
	local sz=$1 n=$2 i ok=0 fail=0
	for ((i = 1; i <= n; i++)); do
		if ((i % 2)); then
			dmt suspend up && dmt resume up && ok=$((ok + 1)) || fail=$((fail + 1))
		else
			dmt reload up --table "0 $sz linear /dev/mapper/low 0" && dmt resume up &&
				ok=$((ok + 1)) || fail=$((fail + 1))
		fi
		# Never leave it suspended.
		dmt resume up >/dev/null 2>&1 || true
	done
	echo "$ok" >"$BATS_TEST_TMPDIR/upper.ok"
	echo "$fail" >"$BATS_TEST_TMPDIR/upper.fail"
}

# Messages (the target has no message handler: refusing them is fine) and
# reads of status, table, info and the tree, which must all work.
loop_read() {
	local n=$1 i ok=0 fail=0
	for ((i = 1; i <= n; i++)); do
		dmt message low 0 "hello $i" >/dev/null 2>&1 || true
		dmt message up 0 "hello $i" >/dev/null 2>&1 || true
		if dmt status low >/dev/null && dmt table low >/dev/null && dmt status up >/dev/null &&
			dmt info low >/dev/null && dmt ls --tree >/dev/null && dmt status --target interpose >/dev/null; then
			ok=$((ok + 1))
		else
			fail=$((fail + 1))
		fi
	done
	echo "$ok" >"$BATS_TEST_TMPDIR/read.ok"
	echo "$fail" >"$BATS_TEST_TMPDIR/read.fail"
}

# Remove attempts: the lower device is held by the upper one, the upper one
# is held open (and claimed while attached): both must fail every time.
loop_remove() {
	local n=$1 i ok=0 fail=0
	for ((i = 1; i <= n; i++)); do
		if dmt remove low >/dev/null 2>&1; then
			echo "iteration $i: 'dmsetup remove low' succeeded" >&2
			fail=$((fail + 1))
		else
			ok=$((ok + 1))
		fi
		if dmt remove up >/dev/null 2>&1; then
			echo "iteration $i: 'dmsetup remove up' succeeded" >&2
			fail=$((fail + 1))
		else
			ok=$((ok + 1))
		fi
		sleep 0.1
	done
	echo "$ok" >"$BATS_TEST_TMPDIR/remove.ok"
	echo "$fail" >"$BATS_TEST_TMPDIR/remove.fail"
}

@test "concurrent dmsetup calls on one stack under a write load" {
	local case="races: concurrent dmsetup calls" dev=${DMI_PDISK}1 fs=ext4
	local n sz mnt pid holder name ok fail r0
	n=$(ncycles 8 300)
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" "$fs" race)
	write_files "$mnt/static" static 8 256
	lower_create low "$dev"
	dmsetup create up --table "0 $sz linear /dev/mapper/low 0"
	lower_reload low "$dev" attach_to /dev/mapper/up
	# Something holds the upper device open, so that removing it fails
	# even between a detach and the next attach.
	(
		exec 4</dev/mapper/up
		exec sleep 100000
	) 3>&- &
	holder=$!
	BG_PIDS+=("$holder")
	dmesg_mark
	sum_load_start "$mnt/load"
	sum_load_moves "start"
	r0=$(redirected low)
	loop_attach "$dev" "$n" 3>&- &
	BG_PIDS+=($!)
	loop_upper "$sz" "$n" 3>&- &
	BG_PIDS+=($!)
	loop_read "$n" 3>&- &
	BG_PIDS+=($!)
	loop_remove "$n" 3>&- &
	BG_PIDS+=($!)
	for pid in "${BG_PIDS[@]:1}"; do
		wait_bounded "$pid" 500 "a dmsetup loop"
	done
	sum_load_moves "after the loops"
	# Everything resumed, attached: the stack still carries the load.
	dmt resume up
	dmt resume low
	lower_reload low "$dev" attach_to /dev/mapper/up
	[[ $(status_field low 3) == attached ]]
	sum_load_moves "attached after the loops"
	(($(redirected low) > 0)) || die "nothing redirected after the loops ($r0 before)"
	for name in attach upper read remove; do
		ok=$(cat "$BATS_TEST_TMPDIR/$name.ok")
		fail=$(cat "$BATS_TEST_TMPDIR/$name.fail")
		echo "$name: $ok calls ok, $fail failed" >&2
	done
	# Races may make a reload or resume fail (busy); never a read, and no
	# remove may succeed. Most attach/detach calls must work.
	(($(cat "$BATS_TEST_TMPDIR/remove.fail") == 0)) || die "a device in use was removed"
	(($(cat "$BATS_TEST_TMPDIR/read.fail") == 0)) || die "status/table reads failed"
	(($(cat "$BATS_TEST_TMPDIR/attach.ok") >= n)) || die "too few attach/detach calls worked"
	(($(cat "$BATS_TEST_TMPDIR/upper.ok") >= n / 2)) || die "too few upper suspend/reload calls worked"
	# Tear down in the documented order.
	lower_reload low "$dev"
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	dmsetup remove --retry up
	dmsetup remove --retry low
	sum_load_stop
	sum_load_verify "$mnt"
	figure "$case" cycles="$n" bytes_verified="$CHECKED" lost="$LOST"
	((LOST == 0)) || die "$LOST files lost their data"
	umount "$mnt"
	fsck_clean "$dev" "$fs" >&2
	no_kernel_warnings
}

@test "attach racing with fsfreeze, with and without the freeze feature" {
	local case="races: attach vs fsfreeze" dev=$DMI_WDISK fs=xfs
	local n mnt i fpid frc arc features cycles=0
	local -a feat
	n=$(ncycles 4 120)
	mnt=$(mkfs_mount "$dev" "$fs" race)
	write_files "$mnt/static" static 8 256
	lower_create low "$dev"
	dmesg_mark
	sum_load_start "$mnt/load"
	sum_load_moves "start"
	for features in "attach" "freeze attach"; do
		read -r -a feat <<<"$features"
		for ((i = 1; i <= n; i++)); do
			timeout -k 5 60 fsfreeze -f "$mnt" 3>&- &
			fpid=$!
			((i % 2)) || sleep 0.05
			arc=0
			int_reload low "$dev" "${feat[@]}" || arc=$?
			frc=0
			wait_bounded "$fpid" 90 "fsfreeze -f" || frc=$?
			((frc == 0)) || die "cycle $i (${feat[*]}): fsfreeze -f failed ($frc)"
			timeout -k 5 60 fsfreeze -u "$mnt" || die "cycle $i (${feat[*]}): fsfreeze -u failed"
			((arc == 0)) || die "cycle $i (${feat[*]}): the attach failed ($arc)"
			[[ $(status_field low 3) == attached ]] || die "cycle $i: not attached"
			sum_load_moves "cycle $i attached"
			int_reload low "$dev" || die "cycle $i (${feat[*]}): the detach failed"
			[[ $(status_field low 3) == passthrough ]]
			cycles=$((cycles + 1))
		done
	done
	sum_load_moves "after the cycles"
	sum_load_stop
	dmsetup remove --retry low
	sum_load_verify "$mnt"
	figure "$case" cycles="$cycles" bytes_verified="$CHECKED" lost="$LOST"
	((LOST == 0)) || die "$LOST files lost their data"
	umount "$mnt"
	fsck_clean "$dev" "$fs" >&2
	no_kernel_warnings
}

# The module must refuse to go: kmod's rmmod (which checks the refcount
# itself) and the kernel's delete_module(2) (O_NONBLOCK: EAGAIN/EBUSY).
rmmod_refused() {
	local out rc=0
	(($(cat /sys/module/dm_interpose/refcnt) > 0)) || die "$1: the module's refcount is 0"
	if out=$(timeout 30 rmmod dm_interpose 2>&1); then
		die "$1: rmmod dm_interpose succeeded"
	fi
	[[ $out == *"in use"* ]] || die "$1: rmmod: unexpected answer: $out"
	# delete_module is syscall 176 on x86_64; exit status: its errno.
	timeout 30 perl -e 'my $m = "dm_interpose"; exit(syscall(176, $m, 04000) == -1 ? $! + 0 : 0)' || rc=$?
	((rc == 11 || rc == 16)) || die "$1: delete_module: errno $rc, expected EAGAIN or EBUSY"
	lsmod | grep -q '^dm_interpose ' || die "$1: the module is gone"
}

@test "module unload is refused while a table exists or a redirect is held" {
	local case="races: module unload attempts" dev=${DMI_PDISK}1 fs=ext4
	local n mnt i sz attempts=0
	[[ -e /sys/module/dm_interpose/refcnt ]] || skip "dm_interpose is built in"
	n=$(ncycles 5 100)
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" "$fs" race)
	write_files "$mnt/static" static 8 256
	dmesg_mark
	sum_load_start "$mnt/load"
	# A device with only an inactive interpose table.
	dmsetup create inact --notable
	dmsetup load inact --table "0 $(sectors "${DMI_PDISK}2") interpose ${DMI_PDISK}2"
	rmmod_refused "inactive table"
	attempts=$((attempts + 1))
	dmsetup clear inact
	dmsetup remove inact
	lower_create low "$dev"
	for ((i = 1; i <= n; i++)); do
		rmmod_refused "cycle $i, pass-through table"
		sum_load_moves "cycle $i, pass-through"
		int_reload low "$dev" attach no_direct || die "cycle $i: attach failed"
		rmmod_refused "cycle $i, attached"
		sum_load_moves "cycle $i, attached"
		(($(redirected low) > 0)) || die "cycle $i: nothing redirected"
		int_reload low "$dev" || die "cycle $i: detach failed"
		attempts=$((attempts + 2))
	done
	# Through an upper device.
	dmsetup create up --table "0 $sz linear /dev/mapper/low 0"
	lower_reload low "$dev" attach_to /dev/mapper/up
	rmmod_refused "attached to an upper device"
	sum_load_moves "attached to an upper device"
	attempts=$((attempts + 1))
	lower_reload low "$dev"
	dmsetup remove --retry up
	rmmod_refused "after the detach, the lower device left"
	attempts=$((attempts + 1))
	dmsetup remove --retry low
	sum_load_moves "after the teardown"
	sum_load_stop
	# Nothing of ours left: it unloads, and loads again.
	settle 30 || true
	timeout 30 rmmod dm_interpose
	insmod "$DMI_MODULE"
	sum_load_verify "$mnt"
	figure "$case" cycles="$n" bytes_verified="$CHECKED" lost="$LOST"
	((LOST == 0)) || die "$LOST files lost their data"
	echo "$attempts unload attempts refused" >&2
	umount "$mnt"
	fsck_clean "$dev" "$fs" >&2
	no_kernel_warnings
}

# The shape of the stall seen after a detach under vm-run --icount 0
# (issue: dmsetup in rcu_barrier, insmod behind ftrace's lock): one boot,
# many cycles of create, attach (attach and attach_to in turn), a write
# through the redirect, detach, remove, and a module load and unload. Each
# command has a time limit, so a stall fails the test instead of hanging it.
@test "attach/detach cycles with dmsetup create/remove and module load/unload: no stall" {
	local dev=$DMI_WDISK sz n i helper
	helper=$(dmi_helper nop)
	[[ -f $helper ]] || die "$helper not built (make module)"
	[[ $(modinfo -F vermagic "$helper") == "$(uname -r) "* ]] ||
		die "$helper is not built for $(uname -r)"
	sz=$(sectors "$dev")
	n=$(ncycles 12 200)
	: >"$BATS_TEST_TMPDIR/sums"
	for ((i = 0; i < n; i++)); do
		if ((i % 2)); then
			dmt create low --table "0 $sz interpose $dev 2 attach no_direct"
		else
			dmt create low --table "0 $sz interpose $dev"
			dmt create up --table "0 $sz linear /dev/mapper/low 0"
			int_reload low "$dev" attach_to /dev/mapper/up
		fi
		[[ $(status_field low 3) == attached ]]
		head -c 64k /dev/urandom >"$BATS_TEST_TMPDIR/blk"
		timeout 120 dd if="$BATS_TEST_TMPDIR/blk" of="$dev" bs=64k seek="$i" \
			oflag=direct status=none
		echo "$i $(sha256sum <"$BATS_TEST_TMPDIR/blk" | cut -d' ' -f1)" >>"$BATS_TEST_TMPDIR/sums"
		(($(redirected low) > 0))
		int_reload low "$dev"
		if ((i % 2 == 0)); then
			dmt remove up
		fi
		dmt remove low
		timeout 120 insmod "$helper"
		timeout 120 rmmod dmi_nop
	done
	while read -r i sum; do
		[[ $(dd if="$dev" bs=64k skip="$i" count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1) == "$sum" ]] ||
			die "block $i differs"
	done <"$BATS_TEST_TMPDIR/sums"
	figure "create/attach/detach/remove + module load" cycles="$n" \
		bytes_verified="$((n * 65536))" lost=0
}
