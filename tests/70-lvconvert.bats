#!/usr/bin/env bats
# lvconvert --interpose (lvm-patches 0004-0010, 0012-0014): a mounted filesystem under a
# steady write load is taken over by an interposed LV, snapshotted twice,
# its VG deactivated and reactivated under it, and given back; each
# snapshot holds exactly the data of its time. Every refusal of the
# conversion and of activation.
# cost: 7

load lib

setup() {
	dmi_require_guest
	[[ $(command -v lvm) == "$DMI_TOP/build/lvm/bin/lvm" ]] ||
		die "lvm is $(command -v lvm), not build/lvm/bin/lvm (make lvm)"
	VG=dmivg
}

teardown() {
	if [[ -n ${LOAD_PID:-} ]]; then stop_load; fi
	vgchange -an "$VG" >/dev/null 2>&1 || true
	vgremove -ff "$VG" >/dev/null 2>&1 || true
	if [[ -n ${UDEV_INSTALLED:-} ]]; then
		"$BATS_TEST_DIRNAME/../scripts/install" --uninstall udev >/dev/null || true
	fi
	dmi_cleanup
}

# A VG on a fresh loop device (4 MiB extents): new_vg SIZE_MB
new_vg() {
	local pv
	pv=$(new_loop "$1")
	pvcreate -q "$pv" >/dev/null
	vgcreate -q "$VG" "$pv" >/dev/null
}

# The interposed LV's device holds the redirect: attached_ok LV DEV
attached_ok() {
	local lv=$1 dev=$2 holder=$VG-$1
	lvs --noheadings -o segtype "$VG/$lv" | grep -qw interposed || die "$lv is not interposed"
	dmsetup info "$VG-$lv-real" >/dev/null 2>&1 && holder=$VG-$lv-real
	[[ $(status_field "$holder" 1) == "$(devno "$dev")" ]] || die "$holder: not on $dev"
	[[ $(status_field "$holder" 3) == attached ]] || die "$holder: $(dmsetup status "$holder")"
	[[ $(status_field "$holder" 4) == "$(devno "/dev/$VG/$lv")" ]] ||
		die "$holder: redirect not to the top of $VG/$lv"
}

# The snapshot SNAP holds the files of PREFIXES and none of NOT:
# snap_holds FS SNAP "PREFIXES" "NOT"
snap_holds() {
	local fs=$1 snap=$2 pfx=$3 not=$4 mnt=$DMI_MNT/snap p
	mkdir -p "$mnt"
	case $fs in
	# A frozen ext4 has its journal checkpointed: clean as it is.
	ext4) mount -o ro,noload "/dev/$VG/$snap" "$mnt" ;;
	# A frozen XFS has its log covered, not unmounted: the mount
	# replays it (into the COW), then xfs_repair finds it clean.
	xfs) mount -o nouuid "/dev/$VG/$snap" "$mnt" ;;
	esac
	for p in $pfx; do verify_files "$mnt" "$p" || { umount "$mnt"; die "$snap: $p differs"; }; done
	for p in $not; do
		if compgen -G "$mnt/$p.*" >/dev/null; then umount "$mnt"; die "$snap: has $p (later data)"; fi
	done
	umount "$mnt"
	fsck_clean "/dev/$VG/$snap" "$fs"
}

# lvm's boot record of LV on DEV (/etc/lvm/interposed/<lvid>), checked;
# prints its path: boot_record LV DEV
boot_record() {
	local rec
	rec=$(grep -l -x "lv=$1" /etc/lvm/interposed/* 2>/dev/null) || die "no boot record of $VG/$1"
	grep -qx "vg=$VG" "$rec" && grep -qx "size=$(sectors "$2")" "$rec" &&
		grep -qx "partition=$(cat "/sys/class/block/${2##*/}/partition" 2>/dev/null || echo 0)" "$rec" ||
		die "boot record of $VG/$1: $(cat "$rec")"
	echo "$rec"
}

# Is DEV held back from systemd by the udev rules (SYSTEMD_READY=0)?
held() { udevadm info -q property "$1" | grep -qx SYSTEMD_READY=0; }

# The whole flow on FS on DEV: convert under load, two snapshots,
# deactivate/reactivate with the fs mounted, uninterpose.
flow() {
	local fs=$1 dev=$2 mnt r0 r1 rec
	new_vg 1024
	mnt=$(mkfs_mount "$dev" "$fs" data)
	write_files "$mnt" a 8 256
	start_load "$mnt"

	lvconvert --interpose "$dev" --name data "$VG"
	attached_ok data "$dev"
	boot_record data "$dev" >/dev/null
	findmnt -n -o SOURCE "$mnt" | grep -qx "$dev" || die "the fs is no longer mounted on $dev"
	lvs --noheadings -o devices "$VG/data" | grep -q "$dev"
	lvdisplay "$VG/data" | grep -q "Interposed device *$dev"
	write_files "$mnt" b 8 256

	lvcreate -q -s -L 400M -n snap1 "$VG/data"
	attached_ok data "$dev"
	write_files "$mnt" c 8 256
	lvcreate -q -s -L 400M -n snap2 "$VG/data"
	attached_ok data "$dev"
	write_files "$mnt" d 8 256
	r0=$(status_field "$VG-data-real" 5)
	sync
	r1=$(status_field "$VG-data-real" 5)
	((r1 > r0)) || die "no bio of $dev went through $VG/data ($r0 -> $r1)"
	# Under a snapshot-origin the origin's reads skip the stack.
	dmsetup table "$VG-data-real" | grep -q " attach_to .* reads_direct" ||
		die "$VG-data-real has no reads_direct: $(dmsetup table "$VG-data-real")"

	snap_holds "$fs" snap1 "a b" "c d"
	snap_holds "$fs" snap2 "a b c" "d"

	# Its device is in use: deactivating would make the snapshots wrong.
	run vgchange -an "$VG"
	((status != 0)) && [[ $output == *"in use"* ]] || die "vgchange -an with snapshots: $output"
	attached_ok data "$dev"

	lvremove -q -f "$VG/snap1" "$VG/snap2"
	attached_ok data "$dev"
	dmsetup info "$VG-data-real" >/dev/null 2>&1 && die "$VG-data-real left behind"

	# Deactivate and reactivate under the mounted fs and its load.
	vgchange -an "$VG"
	dmsetup info "$VG-data" >/dev/null 2>&1 && die "$VG/data still active"
	write_files "$mnt" e 4 256
	vgchange -ay "$VG"
	attached_ok data "$dev"
	write_files "$mnt" f 4 256

	rec=$(boot_record data "$dev")
	lvconvert --uninterpose "$VG/data"
	[[ ! -e $rec ]] || die "$rec left behind by lvconvert --uninterpose"
	dmsetup info "$VG-data" >/dev/null 2>&1 && die "$VG/data still there"
	lvs "$VG/data" >/dev/null 2>&1 && die "$VG/data still in the metadata"
	write_files "$mnt" g 4 256
	stop_load
	for p in a b c d e f g; do verify_files "$mnt" "$p"; done
	umount "$mnt"
	fsck_clean "$dev" "$fs"
}

@test "ext4 on a partition under load: interpose, two snapshots, VG off and on, uninterpose" {
	flow ext4 "${DMI_PDISK}1"
}

@test "XFS on a whole disk under load: interpose, two snapshots, VG off and on, uninterpose" {
	wipefs -q -a "$DMI_WDISK"
	flow xfs "$DMI_WDISK"
}

# Expect an lvm command to fail with a message matching REGEX:
# lvm_refused REGEX CMD...
lvm_refused() {
	local re=$1
	shift
	run "$@"
	((status != 0)) || die "'$*' succeeded"
	[[ $output =~ $re ]] || die "'$*': expected /$re/, got: $output"
}

@test "lvconvert --interpose refuses PVs, LVs, interposed and held devices, PV holders, read-only and odd sizes" {
	local dev=${DMI_PDISK}1 pv2 disk ro odd f
	new_vg 256
	mkfs.ext4 -q -F "$dev"

	lvm_refused "is a PV" lvconvert --interpose "$(pvs --noheadings -o pv_name | awk 'NR == 1 { print $1 }')" --name x "$VG"
	pv2=$(new_loop 64)
	pvcreate -q "$pv2"
	lvm_refused "is a PV" lvconvert --interpose "$pv2" --name x "$VG"
	lvcreate -q -L 8M -n plain "$VG"
	lvm_refused "is an LV" lvconvert --interpose "/dev/$VG/plain" --name x "$VG"
	lvm_refused "already exists" lvconvert --interpose "$dev" --name plain "$VG"
	lvm_refused "Cannot find block device" lvconvert --interpose /dev/nonexistent --name x "$VG"

	# Held by another device: already interposed; or stacked on.
	lvconvert --interpose "$dev" --name data "$VG"
	lvm_refused "already interposed" lvconvert --interpose "$dev" --name x "$VG"
	f=$(new_loop 64)
	dmsetup create dmi-held --table "0 $(sectors "$f") linear $f 0"
	lvm_refused "in use by" lvconvert --interpose "$f" --name x "$VG"

	# A disk with a PV of the VG on one of its partitions.
	f=$(mktemp /var/tmp/dmi-loop.XXXXXX)
	truncate -s 64M "$f"
	printf 'label: gpt\n,\n' | sfdisk -q "$f" >/dev/null
	disk=$(losetup -f --show -P "$f")
	settle
	[[ -b ${disk}p1 ]] || die "no ${disk}p1"
	pvcreate -q "${disk}p1"
	vgextend -q "$VG" "${disk}p1"
	lvm_refused "holds PV" lvconvert --interpose "$disk" --name x "$VG"
	vgreduce -q "$VG" "${disk}p1"

	ro=$(new_loop 64)
	blockdev --setro "$ro"
	lvm_refused "read-only" lvconvert --interpose "$ro" --name x "$VG"
	odd=$(new_loop 65)
	lvm_refused "not a multiple of the extent size" lvconvert --interpose "$odd" --name x "$VG"

	# Nothing was recorded by the refusals.
	[[ $(lvs --noheadings -o lv_name "$VG" | awk '{ print $1 }' | sort | xargs) == "data plain" ]]

	# The interposed LV: no resize, no uninterpose or merge with snapshots.
	lvm_refused "Cannot resize interposed" lvextend -L +4M "$VG/data"
	lvcreate -q -s -L 16M -n snap "$VG/data"
	lvm_refused "has snapshots" lvconvert --uninterpose "$VG/data"
	lvm_refused "interposed origin" lvconvert --merge "$VG/snap"
	lvremove -q -f "$VG/snap"
	lvconvert --uninterpose "$VG/data"
	lvm_refused "does not accept LV type linear" lvconvert --uninterpose "$VG/plain"
}

@test "activation refuses a device of another size or a re-attached one (diskseq)" {
	local f loop mnt
	new_vg 256
	loop=$(new_loop 64)
	f=$(losetup -n -O BACK-FILE "$loop")
	mnt=$(mkfs_mount "$loop" ext4 data)
	write_files "$mnt" a 4 128
	lvconvert --interpose "$loop" --name data "$VG"
	lvs --noheadings -o devices "$VG/data" | grep -q "$loop"
	umount "$mnt"
	vgchange -an "$VG"

	# The same loop file, grown: found by its ID (loop_file), wrong size.
	truncate -s 68M "$f"
	losetup -c "$loop"
	lvm_refused "made for" vgchange -ay "$VG"
	dmsetup info "$VG-data" >/dev/null 2>&1 && die "activated on a device of another size"
	truncate -s 64M "$f"
	losetup -c "$loop"

	# The same file attached again: a new disk sequence number.
	losetup -d "$loop"
	loop=$(losetup -f --show "$f")
	lvm_refused "disk sequence number .* was replaced or re-attached" vgchange -ay "$VG"
	dmsetup info "$VG-data" >/dev/null 2>&1 && die "activated on a re-attached device"

	# Given back without activation; the data is intact.
	lvconvert --uninterpose "$VG/data"
	mount "$loop" "$mnt"
	verify_files "$mnt" a
	umount "$mnt"
	fsck_clean "$loop" ext4
}

@test "udev holds an inactive LV's device for its activation; an origin written while inactive is refused" {
	local dev=${DMI_PDISK}1 mnt rec p
	"$BATS_TEST_DIRNAME/../scripts/install" udev >/dev/null
	UDEV_INSTALLED=1
	new_vg 256
	mnt=$(mkfs_mount "$dev" ext4 data)
	write_files "$mnt" a 4 128
	lvconvert --interpose "$dev" --name data "$VG"
	rec=$(boot_record data "$dev")
	udevadm trigger --action=add --settle "$dev"
	! held "$dev" || die "$dev held while attached"
	lvcreate -q -s -L 16M -n snap "$VG/data"
	umount "$mnt"
	vgchange -an "$VG"

	# Inactive and unused: an "add" holds it, a "change" keeps the hold.
	udevadm trigger --action=add --settle "$dev"
	held "$dev" || die "$dev not held: $(udevadm info -q property "$dev")"
	udevadm info -q property "$dev" | grep -qx "DM_INTERPOSE_LVM=$VG/data"
	udevadm trigger --action=change --settle "$dev"
	held "$dev" || die "$dev: hold lost on a change event"

	# Nothing wrote to it: the origin activates, and that ends the hold.
	vgchange -ay "$VG"
	attached_ok data "$dev"
	settle
	! held "$dev" || die "$dev still held after the activation"

	# Mounted and written while inactive: refused, until the snapshot goes.
	vgchange -an "$VG"
	mount "$dev" "$mnt"
	write_files "$mnt" b 4 128
	sync -f "$mnt"
	lvm_refused "sectors were written to $dev while the LV was not active \(since its deactivation\)" \
		vgchange -ay "$VG"
	dmsetup info "$VG-data" >/dev/null 2>&1 && die "activated after writes that bypassed it"
	# A mounted device is never held, not by a synthetic "add" either.
	udevadm trigger --action=add --settle "$dev"
	! held "$dev" || die "mounted $dev held"
	lvremove -q -f "$VG/snap"
	vgchange -ay "$VG"
	attached_ok data "$dev"
	write_files "$mnt" c 4 128

	lvconvert --uninterpose "$VG/data"
	[[ ! -e $rec ]] || die "$rec left behind"
	for p in a b c; do verify_files "$mnt" "$p"; done
	umount "$mnt"
	fsck_clean "$dev" ext4
}
