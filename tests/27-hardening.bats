#!/usr/bin/env bats
# Hardened kernels: booted with bdev_allow_write_mounted=0, the block layer
# refuses a second writable open of a device a filesystem has mounted. The
# target opens the original read-only (it only submits bios), so the attach
# to a mounted filesystem still works.
# append: bdev_allow_write_mounted=0
# min-kernel: 6.8
# cost: 2

load lib

setup() {
	dmi_require_guest
	grep -qw 'bdev_allow_write_mounted=0' /proc/cmdline ||
		die "this guest was not booted with bdev_allow_write_mounted=0"
}

teardown() {
	dmi_cleanup
}

# harden_attach FS DEV: the writable open is refused (the parameter is in
# force), the attach works, data written through the redirect is verified.
harden_attach() {
	local fs=$1 dev=$2 mnt r0 sz
	mnt=$(mkfs_mount "$dev" "$fs" hard)
	write_files "$mnt" pre 4 256
	# dd opens its output for writing: refused while mounted.
	fails dd if=/dev/zero of="$dev" bs=4k count=0 status=none
	lower_create low "$dev" attach no_direct
	[[ $(status_field low 3) == attached ]]
	r0=$(redirected low)
	write_files "$mnt" during 8 256
	sync
	(($(redirected low) > r0 + 8))
	# A stack: detach, a linear on the lower device, attach_to it.
	lower_reload low "$dev"
	sz=$(sectors "$dev")
	dmsetup create upper --table "0 $sz linear /dev/mapper/low 0"
	lower_reload low "$dev" attach_to /dev/mapper/upper
	[[ $(status_field low 4) == "$(devno /dev/mapper/upper)" ]]
	write_files "$mnt" stacked 4 256
	sync
	lower_reload low "$dev"
	dmsetup remove upper
	for f in pre during stacked; do verify_files "$mnt" "$f"; done
	umount "$mnt"
	fsck_clean "$dev" "$fs"
}

@test "bdev_allow_write_mounted=0: attach to a mounted ext4 partition" {
	harden_attach ext4 "${DMI_PDISK}1"
}

@test "bdev_allow_write_mounted=0: attach to a mounted XFS whole disk" {
	harden_attach xfs "$DMI_WDISK"
}
