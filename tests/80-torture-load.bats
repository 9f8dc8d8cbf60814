#!/usr/bin/env bats
# Torture: a mixed fio load with verification (random and sequential writes,
# O_DIRECT and buffered, libaio and io_uring) on a mounted filesystem while
# the interposer is attached and detached in a loop, and while the upper
# device of an attached stack is suspended, resumed and reloaded in a loop.
# Every block fio writes is read back and checked (crc32c) during the run
# and again after a remount; files written before the cycles are checked
# after them; fsck finds nothing. Cycles: torture_n (DMI_TORTURE=long), or
# DMI_TORTURE_CYCLES.
# cost: 7

load lib

setup() {
	dmi_require_guest
}

teardown() {
	local pid
	for pid in ${CYC_PID:-}; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	CYC_PID=
	dmi_cleanup_unload
}

# The fio job file of the mixed load, SIZE per job, files under DIR:
# fio_job DIR SIZE. No verify_backlog: with it, --verify_only (the check
# after the remount) does not check anything.
fio_job() {
	cat <<EOF
[global]
directory=$1
size=$2
bs=4k
iodepth=4
rate=,${DMI_FIO_RATE:-512k}
verify=crc32c
verify_fatal=1
do_verify=1
verify_state_save=0

[randwrite-direct-libaio]
rw=randwrite
direct=1
ioengine=libaio

[write-buffered-io_uring]
rw=write
direct=0
ioengine=io_uring

[randwrite-buffered-libaio-fsync]
rw=randwrite
direct=0
ioengine=libaio
fsync=16

[write-direct-io_uring]
rw=write
direct=1
ioengine=io_uring
EOF
}

# Run the job file $BATS_TEST_TMPDIR/load.fio once (extra fio options:
# ARGS) and print the bytes it read back and verified; on an error show
# fio's output and fail: fio_run ARGS...
fio_run() {
	local out=$BATS_TEST_TMPDIR/fio.json
	if ! timeout -k 10 400 fio --output-format=json --output="$out" "$@" \
		"$BATS_TEST_TMPDIR/load.fio" 2>"$out.err"; then
		cat "$out" "$out.err" >&2
		die "fio $* failed: verify error, I/O error or timeout"
	fi
	if [[ $(jq '[.jobs[] | select(.error != 0)] | length' "$out") != 0 ]]; then
		cat "$out" "$out.err" >&2
		die "a fio job reports an error"
	fi
	jq '[.jobs[].read.io_bytes] | add' "$out"
}

# Run fio_run in a loop while process PID lives (at least once); add the
# bytes verified to $BATS_TEST_TMPDIR/bytes, the runs to .../runs.
fio_while() {
	local pid=$1 b runs=0 bytes=0
	while :; do
		b=$(fio_run) || return 1
		bytes=$((bytes + b))
		runs=$((runs + 1))
		kill -0 "$pid" 2>/dev/null || break
	done
	echo "$bytes" >"$BATS_TEST_TMPDIR/bytes"
	echo "$runs" >"$BATS_TEST_TMPDIR/runs"
}

# Attach and detach the lower device "low" of DEV N times, with FEATURES
# for the attach; record each cycle's redirected count (read just before
# the detach) in $BATS_TEST_TMPDIR/redirected: attach_cycles DEV N FEATURES...
attach_cycles() {
	local dev=$1 n=$2 i
	shift 2
	for ((i = 1; i <= n; i++)); do
		int_reload low "$dev" "$@" || { echo "cycle $i: attach failed" >&2; return 1; }
		[[ $(status_field low 3) == attached ]] || { echo "cycle $i: not attached" >&2; return 1; }
		sleep 0.2
		redirected low >>"$BATS_TEST_TMPDIR/redirected"
		int_reload low "$dev" || { echo "cycle $i: detach failed" >&2; return 1; }
		[[ $(status_field low 3) == passthrough ]] || { echo "cycle $i: not detached" >&2; return 1; }
		sleep 0.2
		echo "$i" >"$BATS_TEST_TMPDIR/cycles"
	done
}

# With "low" attached to the upper linear device "up" (SZ sectors), N times:
# suspend and resume it; reload it with the same table; reload it with an
# equivalent table of two linear segments. The redirect must stay in place.
upper_cycles() {
	local n=$1 sz=$2 i h up_dev
	h=$((sz / 2))
	up_dev=$(devno /dev/mapper/up)
	for ((i = 1; i <= n; i++)); do
		dmt suspend up && dmt resume up || { echo "cycle $i: suspend/resume failed" >&2; return 1; }
		dmt reload up --table "0 $sz linear /dev/mapper/low 0" && dmt resume up ||
			{ echo "cycle $i: reload (same table) failed" >&2; return 1; }
		dmt reload up --table "0 $h linear /dev/mapper/low 0
$h $((sz - h)) linear /dev/mapper/low $h" && dmt resume up ||
			{ echo "cycle $i: reload (two segments) failed" >&2; return 1; }
		[[ $(dmsetup table up | wc -l) == 2 ]] || { echo "cycle $i: upper table not reloaded" >&2; return 1; }
		[[ $(status_field low 3) == attached && $(status_field low 4) == "$up_dev" ]] ||
			{ echo "cycle $i: the redirect moved: $(dmsetup status low)" >&2; return 1; }
		echo "$i" >"$BATS_TEST_TMPDIR/cycles"
	done
}

# After the cycles: remount (nothing from the page cache), check every fio
# block and the static files, unmount, fsck. Sets CHECKED to the bytes
# verified: final_check FS DEV MNT
final_check() {
	local fs=$1 dev=$2 mnt=$3 b s
	umount "$mnt"
	mount "$dev" "$mnt"
	b=$(fio_run --verify_only)
	verify_files "$mnt/static" static || die "static files changed"
	s=$(stat -c %s "$mnt"/static/static.* | awk '{ s += $1 } END { print s }')
	umount "$mnt"
	fsck_clean "$dev" "$fs" >&2 || die "fsck found problems"
	CHECKED=$((b + s))
}

# The load while "low" is attached and detached: torture_attach CASE FS DEV MODE
# (MODE attach: low redirects to itself; attach_to: to an upper linear).
torture_attach() {
	local case=$1 fs=$2 dev=$3 mode=$4 n sz mnt red cycles bytes
	n=$(ncycles 8 500)
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" "$fs" load)
	write_files "$mnt/static" static 8 256
	mkdir -p "$mnt/fio"
	fio_job "$mnt/fio" 4M >"$BATS_TEST_TMPDIR/load.fio"
	lower_create low "$dev"
	local -a feat=(attach)
	if [[ $mode == attach_to ]]; then
		dmsetup create up --table "0 $sz linear /dev/mapper/low 0"
		feat=(attach_to /dev/mapper/up)
	fi
	: >"$BATS_TEST_TMPDIR/redirected"
	echo 0 >"$BATS_TEST_TMPDIR/cycles"
	attach_cycles "$dev" "$n" "${feat[@]}" 3>&- &
	CYC_PID=$!
	fio_while "$CYC_PID"
	wait "$CYC_PID" || die "an attach/detach cycle failed"
	CYC_PID=
	cycles=$(cat "$BATS_TEST_TMPDIR/cycles")
	((cycles == n)) || die "$cycles of $n cycles done"
	red=$(awk '{ s += $1 } END { print s + 0 }' "$BATS_TEST_TMPDIR/redirected")
	# attach: the redirect is idle while resumed (each cycle switches it
	# busy and idle under the load), its bios are not counted.
	[[ $mode == attach ]] || ((red > 0)) || die "no bio was redirected while attached"
	dmsetup remove --retry up 2>/dev/null || true
	dmsetup remove --retry low
	bytes=$(cat "$BATS_TEST_TMPDIR/bytes")
	final_check "$fs" "$dev" "$mnt"
	bytes=$((bytes + CHECKED))
	echo "$case: $cycles cycles, $(cat "$BATS_TEST_TMPDIR/runs") fio runs, $red bios redirected" >&2
	figure "$case" cycles="$cycles" bytes_verified="$bytes" lost=0
}

@test "fio mixed load under attach/detach cycles: ext4 on a partition" {
	torture_attach "fio load, attach/detach: ext4" ext4 "${DMI_PDISK}1" attach
}

@test "fio mixed load under attach/detach cycles: XFS on a whole disk, through an upper device" {
	torture_attach "fio load, attach_to/detach: XFS" xfs "$DMI_WDISK" attach_to
}

@test "fio mixed load while the upper device is suspended and reloaded: ext4" {
	local case="fio load, upper suspend/reload: ext4" dev=${DMI_PDISK}1 fs=ext4
	local n sz mnt r0 r1 cycles bytes
	n=$(ncycles 6 300)
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" "$fs" load)
	write_files "$mnt/static" static 8 256
	mkdir -p "$mnt/fio"
	fio_job "$mnt/fio" 4M >"$BATS_TEST_TMPDIR/load.fio"
	lower_create low "$dev"
	dmsetup create up --table "0 $sz linear /dev/mapper/low 0"
	lower_reload low "$dev" attach_to /dev/mapper/up
	[[ $(status_field low 3) == attached ]]
	r0=$(redirected low)
	echo 0 >"$BATS_TEST_TMPDIR/cycles"
	upper_cycles "$n" "$sz" 3>&- &
	CYC_PID=$!
	fio_while "$CYC_PID"
	wait "$CYC_PID" || die "an upper suspend/reload cycle failed"
	CYC_PID=
	cycles=$(cat "$BATS_TEST_TMPDIR/cycles")
	((cycles == n)) || die "$cycles of $n cycles done"
	r1=$(redirected low)
	((r1 > r0)) || die "no bio was redirected ($r0 -> $r1)"
	lower_reload low "$dev"
	dmsetup remove --retry up
	dmsetup remove --retry low
	bytes=$(cat "$BATS_TEST_TMPDIR/bytes")
	final_check "$fs" "$dev" "$mnt"
	bytes=$((bytes + CHECKED))
	echo "$case: $cycles cycles, $(cat "$BATS_TEST_TMPDIR/runs") fio runs, $((r1 - r0)) bios redirected" >&2
	figure "$case" cycles="$cycles" bytes_verified="$bytes" lost=0
}
