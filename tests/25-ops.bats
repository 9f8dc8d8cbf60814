#!/usr/bin/env bats
# Operations other than read and write through an attached interposer
# (discard, write-zeroes, flush), and queue limits stacked from the device.
# no_direct: they take the redirect (an attach table's is otherwise idle).
# cost: 2

load lib

setup() {
	dmi_require_guest
}

teardown() {
	dmi_cleanup
}

qlimit() { cat "/sys/class/block/$(basename "$(realpath "$1")")/queue/$2"; }

@test "discard and write-zeroes of an interposed device pass through" {
	local loop r0 r1
	loop=$(new_loop 64)
	head -c 4M /dev/urandom >"$BATS_TEST_TMPDIR/data"
	dd if="$BATS_TEST_TMPDIR/data" of="$loop" bs=1M oflag=direct status=none
	lower_create low "$loop" attach no_direct
	(($(qlimit /dev/mapper/low discard_max_bytes) > 0))
	(($(qlimit /dev/mapper/low write_zeroes_max_bytes) > 0))
	r0=$(redirected low)
	blkdiscard -o 1M -l 1M "$loop"
	blkdiscard -z -o 3M -l 512K "$loop"
	r1=$(redirected low)
	((r1 >= r0 + 2))
	lower_reload low "$loop"
	# Discarded range reads back as zeros (loop punches a hole), the
	# zeroed range too, the rest is untouched.
	cmp <(head -c 1M /dev/zero) <(dd if="$loop" bs=1M skip=1 count=1 iflag=direct status=none)
	cmp <(head -c 512K /dev/zero) <(dd if="$loop" bs=512K skip=6 count=1 iflag=direct status=none)
	cmp <(head -c 1M "$BATS_TEST_TMPDIR/data") <(dd if="$loop" bs=1M count=1 iflag=direct status=none)
	cmp <(tail -c +$((2 * 1048576 + 1)) "$BATS_TEST_TMPDIR/data" | head -c 1M) \
		<(dd if="$loop" bs=1M skip=2 count=1 iflag=direct status=none)
}

@test "fstrim and fsync on a mounted, interposed ext4" {
	local dev=${DMI_PDISK}1 mnt r0
	mnt=$(mkfs_mount "$dev" ext4 trim)
	write_files "$mnt" f 8 256
	lower_create low "$dev" attach no_direct
	rm "$mnt"/f.[0-3]
	sync
	r0=$(redirected low)
	fstrim -v "$mnt"
	(($(redirected low) > r0))
	r0=$(redirected low)
	xfs_io -c "pwrite -q 0 4k" -c fsync "$mnt/f.4"
	(($(redirected low) > r0))
	lower_reload low "$dev"
	sed -i '/f\.[0-4]$/d' "$BATS_TEST_TMPDIR/f.sums"
	verify_files "$mnt" f
	umount "$mnt"
	fsck_clean "$dev" ext4
}

@test "queue limits stack from the original device (4k logical blocks)" {
	local f loop
	f=$(mktemp /var/tmp/dmi-loop.XXXXXX)
	truncate -s 64M "$f"
	loop=$(losetup --sector-size 4096 -f --show "$f")
	lower_create low "$loop"
	[[ $(qlimit /dev/mapper/low logical_block_size) == 4096 ]]
	[[ $(qlimit /dev/mapper/low physical_block_size) == "$(qlimit "$loop" physical_block_size)" ]]
	(($(qlimit /dev/mapper/low max_sectors_kb) <= $(qlimit "$loop" max_sectors_kb)))
	dmsetup create up --table "0 $(sectors "$loop") linear /dev/mapper/low 0"
	lower_reload low "$loop" attach_to /dev/mapper/up
	[[ $(qlimit /dev/mapper/up logical_block_size) == 4096 ]]
	# 4k I/O through the whole stack lands where it should.
	head -c 64k /dev/urandom >"$BATS_TEST_TMPDIR/blk"
	dd if="$BATS_TEST_TMPDIR/blk" of="$loop" bs=4k seek=9 oflag=direct status=none
	lower_reload low "$loop"
	cmp "$BATS_TEST_TMPDIR/blk" <(dd if="$f" bs=4k skip=9 count=16 status=none)
}
