#!/usr/bin/env bats
# A kernel without kprobes (CONFIG_KPROBES off, as some minimal or cloud
# configurations have it) gets a module whose hook is "none": it loads, its
# pass-through tables work, and an attach is refused with a message. The
# module of build/nokprobes is the same sources built as for such a kernel
# (make module: CONFIG_KPROBES= on the primary kernel's headers).
# cost: 1

load lib

NOKPROBES=$DMI_TOP/build/nokprobes/dm-interpose.ko

setup() {
	dmi_require_guest
	[[ -f $NOKPROBES ]] || die "$NOKPROBES not built (make module)"
	[[ $(modinfo -F vermagic "$NOKPROBES") == "$(uname -r) "* ]] ||
		die "$NOKPROBES is not built for $(uname -r)"
}

teardown() {
	dmi_cleanup_unload
	# Back to the module the guest started with.
	[[ -z ${VM_MODULE:-} ]] || insmod "$VM_MODULE"
}

@test "without kprobes: the module loads, passes through, and refuses attach with a message" {
	local dev=${DMI_PDISK}1 mnt r0
	dmi_cleanup_unload
	insmod "$NOKPROBES"
	[[ $(modinfo -F interpose_hook "$NOKPROBES") == none ]]
	mnt=$(mkfs_mount "$dev" ext4 nok)
	write_files "$mnt" a 4 256
	lower_create low "$dev"
	[[ $(dmsetup status low | awk '{print $NF}') == none ]]
	expect_refused "neither the block interposer nor kprobes" lower_reload low "$dev" attach
	# Refused: the device stays suspended with the new table, as after any
	# failed preresume; the pass-through table back, and nothing changed.
	lower_reload low "$dev"
	[[ $(status_field low 3) == passthrough ]]
	r0=$(passed low)
	write_files "$mnt" b 4 256
	sync
	[[ $(passed low) == "$r0" ]]
	umount "$mnt"
	# The pass-through device reads what the filesystem wrote.
	cmp <(dd if="$dev" bs=1M count=64 iflag=direct status=none) \
		<(dd if=/dev/mapper/low bs=1M count=64 iflag=direct status=none)
	fsck_clean "$dev" ext4
	mount "$dev" "$mnt"
	verify_files "$mnt" a
	verify_files "$mnt" b
	umount "$mnt"
}
