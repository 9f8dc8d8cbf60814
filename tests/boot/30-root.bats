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

@test "vm-run --root-file refuses what it cannot boot, before booting" {
	local img=$BATS_TEST_TMPDIR/root.img out
	truncate -s 64M "$img"
	run "$BOOT_TOP/scripts/vm-run" -q --root-file "$img" -- true
	((status == 125)) && [[ $output == *"--root-file is for --init systemd"* ]] || die "harness init: $status $output"
	run "$BOOT_TOP/scripts/vm-run" -q --init systemd --root-file "$img" --scratch-file "$img" -- true
	((status == 125)) && [[ $output == *"one root or the other"* ]] || die "with --scratch-file: $status $output"
	run "$BOOT_TOP/scripts/vm-run" -q --init systemd --root-file "$img" --kernel native -- true
	((status == 125)) && [[ $output == *"stock kernel only"* ]] || die "native kernel: $status $output"
	out=$BATS_TEST_TMPDIR/a,b.img
	run "$BOOT_TOP/scripts/vm-run" -q --init systemd --root-file "$out" -- true
	((status == 125)) && [[ $output == *"--root-file: no commas or whitespace"* ]] || die "comma: $status $output"
	[[ ! -e $out ]] || die "an image was made for a refused path"
}
