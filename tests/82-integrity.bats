#!/usr/bin/env bats
# Stacks that carry integrity metadata: LUKS2 with authenticated encryption
# (cryptsetup luksFormat --integrity hmac-sha256: dm-crypt over a
# dm-integrity device, whose bios carry integrity payloads with the tags)
# keeps working with an interposer attached at each level of the stack.
# The bio-integrity regression of seed 003 (a profile without verify_fn) is
# the failure to avoid: the payload of each bio must reach dm-integrity, in
# place, through the redirect.
# cost: 3

load lib

setup() {
	dmi_require_guest
	modprobe dm_integrity
	modprobe dm_crypt
}

teardown() {
	if [[ -n ${LOAD_PID:-} ]]; then
		kill "$LOAD_PID" 2>/dev/null || true
		wait "$LOAD_PID" 2>/dev/null || true
		LOAD_PID=
	fi
	awk -v m="$DMI_MNT" 'index($2, m) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null || true; done
	# Detach the interposers first, then let cryptsetup close its stack.
	local n
	for n in $(dmsetup ls --target interpose 2>/dev/null | awk '$1 != "No" { print $1 }'); do
		dmsetup remove --force "$n" 2>/dev/null || true
	done
	cryptsetup close sec 2>/dev/null || true
	dmi_cleanup_unload
}

# An authenticated LUKS2 device "sec" on DEV with ext4 mounted, files written:
# luks_integrity DEV
luks_integrity() {
	local dev=$1
	echo -n pw | cryptsetup luksFormat -q --type luks2 --integrity hmac-sha256 \
		--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file - "$dev"
	echo -n pw | cryptsetup open --key-file - "$dev" sec
	[[ -b /dev/mapper/sec_dif ]] || die "no dm-integrity device under sec"
	[[ $(dmsetup table sec_dif | awk '{ print $3 }') == integrity ]]
	MNT=$(mkfs_mount /dev/mapper/sec ext4 sec)
	write_files "$MNT/before" before 8 64
}

# Write and read through the stack with the interposer in place, then
# detach and check everything: integrity_io NAME ORIG
integrity_io() {
	local name=$1 orig=$2 n0
	n0=$(redirected "$name")
	dmesg_mark
	fio --directory="$MNT" --size=4M --bs=4k --rw=randwrite --ioengine=libaio \
		--iodepth=8 --direct=1 --verify=crc32c --verify_fatal=1 --do_verify=1 \
		--name=auth --output="$BATS_TEST_TMPDIR/fio.out" ||
		{ cat "$BATS_TEST_TMPDIR/fio.out" >&2; die "fio verify failed"; }
	write_files "$MNT/during" during 8 64
	sync
	echo 3 >/proc/sys/vm/drop_caches
	verify_files "$MNT/before" before
	verify_files "$MNT/during" during
	(($(redirected "$name") > n0 + 100)) || die "the stack's bios did not go through $orig's interposer"
	! dmesg_since | grep -Ei "checksum failed|mismatch|I/O error|doesn.t support integrity" ||
		die "integrity errors in the kernel log"
	lower_reload "$name" "$orig"
	echo 3 >/proc/sys/vm/drop_caches
	verify_files "$MNT/during" during
	dmsetup remove "$name"
	umount "$MNT"
	fsck_clean /dev/mapper/sec ext4
	cryptsetup close sec
}

@test "authenticated dm-crypt: the dm-integrity device below it interposed, payloads pass" {
	DEV=$(new_loop 48)
	luks_integrity "$DEV"
	# Its integrity profile is stacked onto the interposer's device.
	lower_create int /dev/mapper/sec_dif attach
	local dm
	dm=$(basename "$(realpath /dev/mapper/int)")
	[[ -e /sys/block/$dm/integrity/tag_size ]]
	[[ $(cat "/sys/block/$dm/integrity/tag_size") == \
		$(cat "/sys/block/$(basename "$(realpath /dev/mapper/sec_dif)")/integrity/tag_size") ]] ||
		die "the integrity profile of sec_dif is not stacked"
	integrity_io int /dev/mapper/sec_dif
	figure "dm-integrity under authenticated dm-crypt" bytes_verified=$(((4 << 20) + 16 * 64 * 1024)) lost=0
}

@test "authenticated dm-crypt: the disk below the whole stack and the crypt device on top interposed" {
	DEV=$(new_loop 48)
	luks_integrity "$DEV"
	# The crypt device, with the fs mounted on it.
	lower_create top /dev/mapper/sec attach
	write_files "$MNT/top" top 4 64
	(($(redirected top) > 0))
	lower_reload top /dev/mapper/sec
	dmsetup remove top
	verify_files "$MNT/top" top
	# The partition under dm-integrity, while the stack is open and mounted.
	lower_create part "$DEV" attach no_direct # busy: its bios counted
	integrity_io part "$DEV"
	figure "disk under dm-integrity + dm-crypt" bytes_verified=$(((4 << 20) + 20 * 64 * 1024)) lost=0
}
