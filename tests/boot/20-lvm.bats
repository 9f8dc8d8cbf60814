#!/usr/bin/env bats
# LVM's own autoactivation of an interposed LV at boot, with systemd as
# PID 1: an ext4 on a partition, in /etc/fstab by UUID, converted with
# lvconvert --interpose into an LV of a VG on another disk, with a
# snapshot. At the next boot that disk is plugged in late: udev holds the
# partition back from systemd until the LV is active, so the fstab mount
# waits for LVM's autoactivation (69-lvm.rules, lvm-activate-<vg>), and
# the snapshot stays exact. Then a boot where the partition is mounted
# and written to behind systemd's back before the PV comes: LVM refuses to
# activate the origin and says so. Then a clean reboot with both disks.
# The guest side is tests/boot/lvm.steps.
# cost: 4
load lib

teardown() { boot_teardown; }

@test "an fstab filesystem on an interposed LV's device waits for LVM's autoactivation, also when the PV comes late" {
	boot_setup lvm
	boot_disk data 128M
	boot_disk pv 128M
	boot poweroff lvm.steps setup
	clean_shutdown
	# The late boot: the PV's disk is not there; pv-late plugs it in.
	BOOT_DISKS=(--disk-file "$BOOT_DIR/data.img")
	echo late >"$BOOT_DIR/plug"
	boot reboot lvm.steps late
	clean_shutdown
	# The race: the partition mounted and written to before the PV comes.
	echo race >"$BOOT_DIR/plug"
	boot reboot lvm.steps race
	clean_shutdown
	rm "$BOOT_DIR/plug"
	# shellcheck disable=SC2034 # (boot, in lib.bash, reads it)
	BOOT_DISKS=(--disk-file "$BOOT_DIR/data.img" --disk-file "$BOOT_DIR/pv.img")
	boot poweroff lvm.steps last
	clean_shutdown
}
