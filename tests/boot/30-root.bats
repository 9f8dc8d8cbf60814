#!/usr/bin/env bats
# "Back up my running server": the guest boots from a disk root (an ext4
# image on /dev/vda, vm-run --root-file; /usr is the host's, read-only),
# with systemd as PID 1. While it runs under a write load, a stack goes in
# front of the mounted /, a snapshot of / is taken, copied out and fsck'ed,
# and the stack goes again. A clean reboot finds / clean with every file,
# and e2fsck on the host finds the image clean. The guest side is
# tests/boot/root.steps.
# cost: 2
load lib

teardown() { boot_teardown; }

@test "the live root filesystem: attached, snapshotted, copied out and detached while the system runs" {
	boot_setup root
	BOOT_ROOT_FILE=$BOOT_DIR/root.img
	"$BOOT_TOP/scripts/mkroot" "$BOOT_ROOT_FILE" 1G >/dev/null
	boot_disk cow 64M
	boot_disk backup 1280M
	boot reboot root.steps live
	clean_shutdown_root
	boot poweroff root.steps after
	clean_shutdown_root
	e2fsck -fn "$BOOT_ROOT_FILE" >/dev/null || die "the root image does not fsck clean after the shutdown"
}
