#!/usr/bin/env bats
# A server's boot with systemd as PID 1 (scripts/vm-run --init systemd),
# four boots over the same disks and root: /etc/fstab mounts an ext4 by
# UUID, and /etc/dm-interpose/data.conf puts an era stack in front of its
# partition when udev sees it, before the mount. Then a clean reboot
# (dm-interpose-shutdown.service detaches the stack once the filesystem is
# unmounted; systemd-shutdown finds no DM device left), and a reboot -f
# with no shutdown at all (journal replay, tracked by era). Across the clean
# reboot, an incremental backup as Documentation/backup.rst makes it: a full
# copy of a snapshot on day 0, on day 1 only the blocks era_invalidate names,
# and the copy equals day 1's snapshot. The guest side is
# tests/boot/fstab.steps.
# cost: 4
load lib

teardown() { boot_teardown; }

@test "an fstab filesystem behind a configured era stack: attached before the mount, tracked across a clean reboot and a reboot -f, backed up incrementally" {
	boot_setup fstab
	boot_disk data 128M
	boot_disk meta 16M
	boot_disk cow 64M
	boot_disk backup 192M
	boot poweroff fstab.steps setup
	boot reboot fstab.steps first
	console_has 'dm-interpose-activate: data: detached from 254:[0-9]+ and removed'
	clean_shutdown
	boot reboot-force fstab.steps second
	console_lacks 'detached from'
	boot poweroff fstab.steps third
	console_has 'dm-interpose-activate: data: detached from 254:[0-9]+ and removed'
	clean_shutdown
}
