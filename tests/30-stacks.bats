#!/usr/bin/env bats
# DM stacks put live under a mounted filesystem through a lower device and an
# upper device: linear, era, snapshot-origin + snapshot, flakey, delay.
# It needs 6.8: flakey's error_reads came in 6.6, and the snapshot tests
# check that suspending the upper device freezes the filesystem, which a
# destination forwards from 6.8 on (holder freeze; Documentation/
# dm-interpose.rst, "Kernels"). On 6.1 the lane leaves it out.
# min-kernel: 6.8
# cost: 5

load lib

setup() {
	dmi_require_guest
}

teardown() {
	dmi_cleanup
}

# stack_live FS DEV UPPER_TABLE_AFTER_LOWER: build lower + upper, attach,
# write, detach, verify.
stack_live() {
	local fs=$1 dev=$2 upper=$3 mnt sz
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" "$fs" stack)
	write_files "$mnt" pre 4 256
	start_load "$mnt"
	lower_create low "$dev"
	dmsetup create up --table "0 $sz $upper"
	lower_reload low "$dev" attach_to /dev/mapper/up
	[[ $(status_field low 3) == attached ]]
	write_files "$mnt" during 8 256
	sync
	(($(redirected low) > 0))
	stop_load
	lower_reload low "$dev"
	dmsetup remove up
	dmsetup remove low
	verify_files "$mnt" pre
	verify_files "$mnt" during
	umount "$mnt"
	fsck_clean "$dev" "$fs"
}

@test "linear stack on a mounted XFS partition" {
	stack_live xfs "${DMI_PDISK}1" "linear /dev/mapper/low 0"
}

@test "delay stack: writes to the original device take the delay" {
	local dev=${DMI_PDISK}2 sz t0 t1 ms
	sz=$(sectors "$dev")
	head -c 4k /dev/urandom >"$BATS_TEST_TMPDIR/blk"
	lower_create low "$dev"
	dmsetup create up --table "0 $sz delay /dev/mapper/low 0 400"
	lower_reload low "$dev" attach_to /dev/mapper/up
	t0=$(date +%s%N)
	dd if="$BATS_TEST_TMPDIR/blk" of="$dev" bs=4k seek=7 oflag=direct,dsync status=none
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	echo "write through delay: ${ms} ms" >&2
	((ms >= 400))
	lower_reload low "$dev"
	cmp "$BATS_TEST_TMPDIR/blk" <(dd if="$dev" bs=4k skip=7 count=1 iflag=direct status=none)
}

@test "flakey stack: reads of the original device fail while it is down, writes land" {
	local dev=${DMI_PDISK}2 sz
	sz=$(sectors "$dev")
	head -c 64k /dev/urandom >"$BATS_TEST_TMPDIR/old"
	head -c 64k /dev/urandom >"$BATS_TEST_TMPDIR/new"
	dd if="$BATS_TEST_TMPDIR/old" of="$dev" bs=64k seek=3 oflag=direct status=none
	lower_create low "$dev"
	# up 0 s, down 3600 s: always down; error_reads fails reads only.
	dmsetup create up --table "0 $sz flakey /dev/mapper/low 0 0 3600 1 error_reads"
	lower_reload low "$dev" attach_to /dev/mapper/up
	fails dd if="$dev" of=/dev/null bs=64k skip=3 count=1 iflag=direct status=none
	dd if="$BATS_TEST_TMPDIR/new" of="$dev" bs=64k seek=3 oflag=direct status=none
	lower_reload low "$dev"
	cmp "$BATS_TEST_TMPDIR/new" <(dd if="$dev" bs=64k skip=3 count=1 iflag=direct status=none)
}

@test "era stack: the blocks of a file written after a checkpoint are tracked" {
	local dev=${DMI_PDISK}1 sz mnt meta era blocks b
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" ext4 era)
	meta=$(new_loop 16)
	lower_create low "$dev"
	dmsetup create up --table "0 $sz era $meta /dev/mapper/low 128"
	lower_reload low "$dev" attach_to /dev/mapper/up
	dmsetup message up 0 checkpoint
	era=$(dmsetup status up | awk '{ print $6 }')
	write_files "$mnt" tracked 1 1024
	sync
	dmsetup message up 0 take_metadata_snap
	era_invalidate --metadata-snapshot --written-since "$era" "$meta" >"$BATS_TEST_TMPDIR/written"
	dmsetup message up 0 drop_metadata_snap
	# Every 64 KiB era block holding the file must be in the list.
	blocks=$(filefrag -e -b512 "$mnt/tracked.0" | awk -F'[: .]+' '$2 ~ /^[0-9]+$/ && NF > 6 { for (s = $5; s <= $6; s += 128) print int(s / 128) }' | sort -un)
	[[ -n $blocks ]]
	for b in $blocks; do
		if ! grep -q "block=\"$b\"" "$BATS_TEST_TMPDIR/written" &&
			! awk -v b="$b" -F'"' '/range/ && b >= $2 && b < $4 { f = 1 } END { exit !f }' "$BATS_TEST_TMPDIR/written"; then
			cat "$BATS_TEST_TMPDIR/written" >&2
			die "era block $b of the file is not marked written since era $era"
		fi
	done
	lower_reload low "$dev"
	verify_files "$mnt" tracked
	umount "$mnt"
	fsck_clean "$dev" ext4
}

# snapshot_live FS DEV: a point-in-time copy of a mounted fs under load.
snapshot_live() {
	local fs=$1 dev=$2 sz mnt cow snapmnt
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" "$fs" origin)
	cow=$(new_loop 256)
	lower_create low "$dev"
	dmsetup create origin --table "0 $sz snapshot-origin /dev/mapper/low"
	lower_reload low "$dev" attach_to /dev/mapper/origin
	start_load "$mnt"
	write_files "$mnt" snap 8 256
	cp "$BATS_TEST_TMPDIR/snap.sums" "$BATS_TEST_TMPDIR/old.sums"
	# Suspending the origin freezes the filesystem on the original device:
	# a file cannot be created until the origin is resumed.
	dmsetup suspend origin
	touch "$mnt/probe" &
	local probe=$!
	sleep 1
	[[ ! -e $mnt/probe ]] || die "the filesystem was not frozen by the suspend"
	dmsetup create snap --table "0 $sz snapshot /dev/mapper/low $cow P 8"
	dmsetup resume origin
	wait "$probe"
	[[ -e $mnt/probe ]]
	write_files "$mnt" snap 8 256 # overwrite after the snapshot
	sync
	stop_load
	snapmnt=$DMI_MNT/snap
	mkdir -p "$snapmnt"
	if [[ $fs == ext4 ]]; then
		# A frozen ext4 has its journal checkpointed: clean as it is.
		fsck_clean /dev/mapper/snap ext4
		mount -o ro,noload /dev/mapper/snap "$snapmnt"
	else
		# A frozen XFS has its log covered, not unmounted: xfs_repair
		# wants it replayed first, which a mount of the snapshot does.
		mount -o nouuid /dev/mapper/snap "$snapmnt"
	fi
	(cd "$snapmnt" && sha256sum --quiet -c "$BATS_TEST_TMPDIR/old.sums")
	umount "$snapmnt"
	fsck_clean /dev/mapper/snap "$fs"
	lower_reload low "$dev"
	dmsetup remove snap
	dmsetup remove origin
	dmsetup remove low
	verify_files "$mnt" snap
	umount "$mnt"
	fsck_clean "$dev" "$fs"
}

@test "snapshot of a mounted ext4 whole disk under write load" {
	snapshot_live ext4 "$DMI_WDISK"
}

@test "snapshot of a mounted XFS partition under write load" {
	snapshot_live xfs "${DMI_PDISK}1"
}

# The interposer holds the original open for as long as its table exists, so
# the original's page cache is not dropped at what would otherwise be its
# last close. Writes that reach the original around that cache (a device
# stacked on it) must not leave stale pages for a buffered reader.
# coherent DEV: buffered and direct reads of DEV agree.
coherent() {
	cmp <(dd if="$1" bs=1M status=none) <(dd if="$1" bs=1M iflag=direct status=none)
}

# interposed_ext4_loop MB [FEATURE...]: ORIG becomes an ext4 loop device of
# MB MiB with the lower device "low" attached to it (attach FEATURE...), and
# its page cache filled, as udev's blkid does after an event.
interposed_ext4_loop() {
	ORIG=$(new_loop "$1")
	shift
	mkfs.ext4 -q -F "$ORIG"
	lower_create low "$ORIG" attach "$@"
	dd if="$ORIG" of=/dev/null bs=1M status=none
}

# The redirect of an attach table is idle while its device is resumed: the
# stack's writes go around the target, and the end of the stacked device's
# claim drops the original's clean pages (the block layer; the kprobe hook's
# return probes).
@test "page cache: a linear device on the idly interposed original leaves e2fsck nothing stale" {
	local l sz r0 mnt=$DMI_MNT/top
	interposed_ext4_loop 256
	l=$ORIG
	sz=$(sectors "$l")
	r0=$(redirected low)
	dmsetup create top --table "0 $sz linear $l 0"
	mkdir -p "$mnt"
	mount /dev/mapper/top "$mnt"
	write_files "$mnt/dir" f 32 64
	umount "$mnt"
	dmsetup remove top
	[[ $(redirected low) == "$r0" ]] # idle: nothing went through the redirect
	e2fsck -fn "$l"
	coherent "$l"
	# And once the interposer is gone.
	lower_reload low "$l"
	dmsetup remove low
	e2fsck -fn "$l"
	coherent "$l"
	mount "$l" "$mnt"
	verify_files "$mnt/dir" f
	umount "$mnt"
}

# no_direct: the redirect is busy, the stack's writes go through the target,
# which drops the pages they leave stale as they complete.
@test "page cache: LUKS header and dm-crypt on the interposed disk, blkid and luksDump read the original" {
	local d sz mnt=$DMI_MNT/crypt
	# A small disk: dm-crypt is slow on the debug kernel of the native lane.
	interposed_ext4_loop 160 no_direct
	d=$ORIG
	sz=$(sectors "$d")
	[[ $(blkid -p -o value -s TYPE "$d") == ext4 ]]
	# The header written through a device stacked on the disk.
	dmsetup create top --table "0 $sz linear $d 0"
	echo -n pw | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 \
		--pbkdf-force-iterations 1000 --key-file - /dev/mapper/top
	dmsetup remove top
	[[ $(blkid -p -o value -s TYPE "$d") == crypto_LUKS ]]
	cryptsetup luksDump "$d" | grep -q '^Version:.*2'
	# dm-crypt opened on the interposed disk itself.
	echo -n pw | cryptsetup open --key-file - "$d" c
	mkfs.ext4 -q -F /dev/mapper/c
	mkdir -p "$mnt"
	mount /dev/mapper/c "$mnt"
	write_files "$mnt" f 16 256
	umount "$mnt"
	cryptsetup close c
	(($(redirected low) > 0))
	coherent "$d"
	cryptsetup luksDump "$d" >/dev/null
	echo -n pw | cryptsetup open --key-file - "$d" c
	mount -o ro /dev/mapper/c "$mnt"
	verify_files "$mnt" f
	umount "$mnt"
	cryptsetup close c
	lower_reload low "$d"
	dmsetup remove low
	coherent "$d"
}
