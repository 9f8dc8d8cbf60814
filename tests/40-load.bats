#!/usr/bin/env bats
# Attach and detach in a loop under an fio write load with verification:
# ext4 and XFS, partition and whole disk. CYCLES (default 10) per case;
# tests/80-torture-load.bats runs the long cycles (make torture).
# cost: 7

load lib

setup() {
	dmi_require_guest
	CYCLES=${DMI_CYCLES:-10}
}

teardown() {
	kill "${CYC_PID:-}" 2>/dev/null || true
	wait "${CYC_PID:-}" 2>/dev/null || true
	dmi_cleanup
}

# One fio run: direct and buffered random writers, each block read back and
# checked (crc32c, with its offset in the header) shortly after it is written.
fio_verify() {
	fio --output-format=terse --terse-version=3 --directory="$1" --size=8M --bs=4k \
		--rw=randwrite --ioengine=libaio --iodepth=4 --verify=crc32c \
		--verify_backlog=64 --verify_fatal=1 --do_verify=1 \
		--name=direct --direct=1 --name=buffered --direct=0 --fsync=16 \
		>"$BATS_TEST_TMPDIR/fio.out" 2>&1
}

# cycle_load FS DEV MODE: MODE is attach (the lower device redirects to
# itself) or attach_to (through an upper linear device).
cycle_load() {
	local fs=$1 dev=$2 mode=$3 mnt sz runs=0 cycles_done
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" "$fs" load)
	write_files "$mnt/static" static 4 256
	lower_create low "$dev"
	local -a feat=(attach)
	if [[ $mode == attach_to ]]; then
		dmsetup create up --table "0 $sz linear /dev/mapper/low 0"
		feat=(attach_to /dev/mapper/up)
	fi
	(
		for ((i = 1; i <= CYCLES; i++)); do
			lower_reload low "$dev" "${feat[@]}" || exit 1
			[[ $(status_field low 3) == attached ]] || exit 1
			sleep 0.3
			lower_reload low "$dev" || exit 1
			sleep 0.3
			echo "$i" >"$BATS_TEST_TMPDIR/cycles"
		done
	) &
	CYC_PID=$!
	while kill -0 "$CYC_PID" 2>/dev/null; do
		if ! fio_verify "$mnt"; then
			cat "$BATS_TEST_TMPDIR/fio.out" >&2
			die "fio verify failed during attach/detach cycles"
		fi
		runs=$((runs + 1))
	done
	wait "$CYC_PID" || die "an attach/detach cycle failed"
	CYC_PID=
	cycles_done=$(cat "$BATS_TEST_TMPDIR/cycles")
	echo "$fs $mode: $cycles_done cycles, $runs fio runs verified" >&2
	((cycles_done == CYCLES && runs >= 1))
	verify_files "$mnt/static" static
	umount "$mnt"
	fsck_clean "$dev" "$fs"
}

@test "attach/detach cycles under fio verify: ext4 on a partition" {
	cycle_load ext4 "${DMI_PDISK}1" attach
}

@test "attach/detach cycles under fio verify: XFS on a partition, through an upper device" {
	cycle_load xfs "${DMI_PDISK}1" attach_to
}

@test "attach/detach cycles under fio verify: ext4 on a whole disk, through an upper device" {
	cycle_load ext4 "$DMI_WDISK" attach_to
}

@test "attach/detach cycles under fio verify: XFS on a whole disk" {
	cycle_load xfs "$DMI_WDISK" attach
}
