#!/usr/bin/env bats
# Attaching to a mounted filesystem, the ordering guarantee, the bypass of the
# target's own bios (splits, partitions), and handing a redirect over.
# cost: 4

load lib

setup() {
	dmi_require_guest
}

teardown() {
	udevadm control --start-exec-queue 2>/dev/null || true
	dmi_cleanup
}

# attach_live FS DEV: data written before, while and after attached survives.
# no_direct: every bio goes through the redirect and DM (in attach mode
# the redirect is otherwise idle while the device is resumed, 31-direct).
attach_live() {
	local fs=$1 dev=$2 mnt r0 p1
	mnt=$(mkfs_mount "$dev" "$fs" live)
	write_files "$mnt/pre" pre 8 256 # dirty in the page cache
	lower_create low "$dev" attach no_direct
	[[ $(status_field low 3) == attached ]]
	# Bios issued after the resume returned are redirected.
	r0=$(redirected low)
	dd if=/dev/urandom of="$mnt/direct" bs=4k count=1 oflag=direct status=none
	(($(redirected low) > r0))
	write_files "$mnt/during" during 8 256
	sync
	(($(redirected low) > r0 + 8))
	# Detach; from then on nothing goes through the device.
	lower_reload low "$dev"
	[[ $(status_field low 3) == passthrough ]]
	p1=$(passed low)
	write_files "$mnt/post" post 8 256
	dd if=/dev/urandom of="$mnt/direct" bs=4k count=1 oflag=direct status=none
	sync
	[[ $(passed low) == "$p1" ]]
	verify_files "$mnt/pre" pre
	verify_files "$mnt/during" during
	verify_files "$mnt/post" post
	umount "$mnt"
	fsck_clean "$dev" "$fs"
	mount "$dev" "$mnt"
	verify_files "$mnt/pre" pre
	verify_files "$mnt/during" during
	verify_files "$mnt/post" post
	umount "$mnt"
}

@test "attach and detach a mounted ext4 partition: data verified, counters" {
	attach_live ext4 "${DMI_PDISK}1"
}

@test "attach and detach a mounted XFS whole disk: data verified, counters" {
	attach_live xfs "$DMI_WDISK"
}

@test "attach with freeze: the filesystem is frozen, dirty data reaches the disk first" {
	local dev=${DMI_PDISK}1 mnt
	mnt=$(mkfs_mount "$dev" ext4 frz)
	write_files "$mnt" dirty 4 512 # delayed allocation: not on disk yet
	lower_create low "$dev" attach freeze
	# The freeze wrote the data and checkpointed the journal before the
	# redirect started: the raw device holds the file now.
	echo 3 >/proc/sys/vm/drop_caches
	debugfs -R "cat /dirty.0" "$dev" 2>/dev/null | sha256sum | cut -d' ' -f1 >"$BATS_TEST_TMPDIR/raw"
	grep -q "^$(cat "$BATS_TEST_TMPDIR/raw")  dirty.0\$" "$BATS_TEST_TMPDIR/dirty.sums"
	verify_files "$mnt" dirty
}

# split_bypass DEV DISK START: with max_sectors_kb=8 each 512k bio is split in
# 64 and the block layer resubmits the remainder 63 times; a bio must be
# redirected once (16 writes) and land on the right sector.  dd writes
# through a device node of its own: udevd watches DEV's node, and after a
# writer closes it probes the device in its own process (a whole disk's
# partition table and filesystem: dozens of reads that a stopped exec queue
# does not hold back, seen as 67 redirects on the native lane).
split_bypass() {
	local dev=$1 disk=$2 start=$3 r0 r1 saved node=/dev/dmi-split-node
	saved=$(cat "/sys/block/$(basename "$disk")/queue/max_sectors_kb")
	echo 8 >"/sys/block/$(basename "$disk")/queue/max_sectors_kb"
	head -c 8M /dev/urandom >"$BATS_TEST_TMPDIR/pattern"
	lower_create low "$dev" attach no_direct
	settle 120
	udevadm control --stop-exec-queue # no udev probes of the device meanwhile
	# An event that started between the settle and the stop (the attach's
	# change uevent of the device, say) still runs: let it finish. One that
	# is only queued now waits, and so does this settle: bounded.
	udevadm settle -t 10 >/dev/null 2>&1 || true
	rm -f "$node"
	mknod "$node" b "$((16#$(stat -c %t "$dev")))" "$((16#$(stat -c %T "$dev")))"
	r0=$(redirected low)
	dd if="$BATS_TEST_TMPDIR/pattern" of="$node" bs=512k seek=5 oflag=direct status=none
	r1=$(redirected low)
	rm -f "$node"
	udevadm control --start-exec-queue
	echo "$saved" >"/sys/block/$(basename "$disk")/queue/max_sectors_kb"
	echo "redirected $r0 -> $r1" >&2
	((r1 - r0 >= 16 && r1 - r0 < 24))
	cmp "$BATS_TEST_TMPDIR/pattern" \
		<(dd if="$disk" bs=512 skip=$((start + 5 * 1024)) count=$((16 * 1024)) iflag=direct status=none)
}

@test "split bios on a partition are redirected once and land on the right sector" {
	local p1sum
	p1sum=$(head -c 64M "${DMI_PDISK}1" | sha256sum)
	split_bypass "${DMI_PDISK}2" "$DMI_PDISK" "$(cat "/sys/class/block/$(basename "$DMI_PDISK")2/start")"
	[[ $(head -c 64M "${DMI_PDISK}1" | sha256sum) == "$p1sum" ]]
}

@test "split bios on a whole disk are redirected once" {
	split_bypass "$DMI_WDISK" "$DMI_WDISK" 0
}

@test "reload with attach hands the redirect over without detaching" {
	local dev=${DMI_PDISK}1 mnt r0
	mnt=$(mkfs_mount "$dev" ext4 ho)
	lower_create low "$dev" attach no_direct
	write_files "$mnt" a 4 256
	sync
	r0=$(redirected low)
	dmesg_mark
	lower_reload low "$dev" attach no_direct
	lower_reload low "$dev" attach no_direct diskseq "$(diskseq_of "$dev")"
	if dmesg_since | grep -q "detached"; then
		dmesg_since >&2
		die "the redirect was detached during a hand-over"
	fi
	(($(redirected low) >= r0))
	write_files "$mnt" b 4 256
	sync
	(($(redirected low) > r0))
	verify_files "$mnt" a
	verify_files "$mnt" b
}

@test "LVM-style layering: snapshot-origin slides under a running redirect" {
	local dev=${DMI_PDISK}1 mnt snapmnt sz cow real
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" ext4 lv)
	lower_create data "$dev" attach
	write_files "$mnt" pre 8 256
	cp "$BATS_TEST_TMPDIR/pre.sums" "$BATS_TEST_TMPDIR/old.sums"
	sync
	cow=$(new_loop 128)
	dmesg_mark
	# What lvcreate -s does: a -real device takes the old table, the
	# visible device becomes the snapshot-origin on it.
	dmsetup create data-real --notable
	real=$(dmsetup info -c --noheadings -o major,minor --separator : data-real)
	dmsetup load data-real --table "0 $sz interpose $dev 2 attach_to /dev/mapper/data"
	dmsetup suspend data
	dmsetup load data --table "0 $sz snapshot-origin $real"
	dmsetup resume data-real
	dmsetup create snap --table "0 $sz snapshot $real $cow P 8"
	dmsetup resume data
	[[ $(status_field data-real 3) == attached ]]
	[[ $(status_field data-real 4) == "$(devno /dev/mapper/data)" ]]
	# Overwrite after the snapshot: the snapshot keeps the old data.
	write_files "$mnt" pre 8 256
	cp "$BATS_TEST_TMPDIR/pre.sums" "$BATS_TEST_TMPDIR/new.sums"
	sync
	fsck_clean /dev/mapper/snap ext4
	snapmnt=$DMI_MNT/lvsnap
	mkdir -p "$snapmnt"
	mount -o ro,noload /dev/mapper/snap "$snapmnt"
	(cd "$snapmnt" && sha256sum --quiet -c "$BATS_TEST_TMPDIR/old.sums")
	umount "$snapmnt"
	# Back: remove the snapshot, the visible device takes the redirect again.
	dmsetup remove snap
	dmsetup suspend data
	dmsetup load data --table "0 $sz interpose $dev 1 attach"
	dmsetup resume data
	dmsetup remove data-real
	[[ $(status_field data 3) == attached ]]
	if dmesg_since | grep -q "detached"; then
		dmesg_since >&2
		die "the redirect was detached while layering"
	fi
	(cd "$mnt" && sha256sum --quiet -c "$BATS_TEST_TMPDIR/new.sums")
	lower_reload data "$dev"
	umount "$mnt"
	fsck_clean "$dev" ext4
}

@test "an interposed whole disk takes its partitions' bios too, at the right sectors" {
	local disk=$DMI_WDISK mnt start2 r0
	printf 'label: gpt\n,300M\n,\n' | sfdisk -q "$disk"
	settle 120
	start2=$(cat "/sys/class/block/$(basename "$disk")2/start")
	mnt=$(mkfs_mount "${disk}1" ext4 wholepart)
	write_files "$mnt" pre 4 256
	lower_create low "$disk" attach no_direct
	r0=$(redirected low)
	write_files "$mnt" during 8 256
	sync
	(($(redirected low) > r0 + 8))
	head -c 1M /dev/urandom >"$BATS_TEST_TMPDIR/p2"
	dd if="$BATS_TEST_TMPDIR/p2" of="${disk}2" bs=64k seek=3 oflag=direct status=none
	cmp "$BATS_TEST_TMPDIR/p2" <(dd if="$disk" bs=512 skip=$((start2 + 384)) count=2048 iflag=direct status=none)
	# A write past the end of a partition still fails (the block device
	# file refuses it before any bio; a bio past the end is not redirected).
	fails dd if=/dev/zero of="${disk}1" bs=512 seek="$(sectors "${disk}1")" count=1 oflag=direct status=none
	expect_refused "The disk of this partition has an interposer" \
		dmsetup create bad --table "0 $(sectors "${disk}2") interpose ${disk}2 1 attach"
	lower_reload low "$disk"
	dmsetup remove low
	lower_create lowp "${disk}2" attach
	expect_refused "A partition of this disk has an interposer" \
		dmsetup create bad --table "0 $(sectors "$disk") interpose $disk 1 attach"
	lower_reload lowp "${disk}2"
	verify_files "$mnt" pre
	verify_files "$mnt" during
	umount "$mnt"
	fsck_clean "${disk}1" ext4
	dmsetup remove lowp
	wipefs -q -a "$disk"
	blockdev --rereadpt "$disk"
	settle 120
}
