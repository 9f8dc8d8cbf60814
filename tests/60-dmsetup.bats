#!/usr/bin/env bats
# dmsetup --interpose (lvm-patches 0002, 0003, 0011): interposed stacks built and
# taken down with one command each on a mounted filesystem under write load,
# the pass-through form, live reloads, info and ls --tree, and every failure
# point of create and remove (each DM ioctl made to fail in turn) cleaned up.
# cost: 8

load lib

setup_file() {
	# The shim that makes the Nth DM ioctl of a process fail.
	cc -O2 -Wall -shared -fPIC -o "$BATS_FILE_TMPDIR/dm-ioctl-fail.so" \
		"$BATS_TEST_DIRNAME/helpers/dm-ioctl-fail.c" -ldl
}

setup() {
	dmi_require_guest
	# The patched dmsetup of make lvm, not the host's.
	[[ $(command -v dmsetup) == "$DMI_TOP/build/lvm/bin/dmsetup" ]] ||
		die "dmsetup is $(command -v dmsetup), not build/lvm/bin/dmsetup (make lvm)"
}

teardown() {
	[[ -z ${DMI_MODPROBE:-} ]] || echo "$DMI_MODPROBE" >/proc/sys/kernel/modprobe
	lsmod | grep -q '^dm_interpose ' || insmod "$DMI_MODULE"
	dmi_cleanup
}

# No DM device, no udev cookie left: nothing_left [CONTEXT]
nothing_left() {
	local devs cookies
	settle 120
	devs=$(dmsetup ls | grep -v '^No devices found' || true)
	cookies=$(dmsetup udevcookies | tail -n +2)
	[[ -z $devs ]] || die "${1:-}: devices left behind: $devs"
	[[ -z $cookies ]] || die "${1:-}: udev cookies left behind: $cookies"
}

# The stack NAME on ORIG is complete: lower NAME-interposer attached to NAME.
stack_ok() {
	local name=$1 orig=$2 low=$1-interposer
	[[ -b /dev/mapper/$name && -b /dev/mapper/$low ]] || die "nodes of $name missing"
	[[ $(dmsetup info -c --noheadings -o uuid "$low") == "INTERPOSE-$name" ]]
	[[ $(status_field "$low" 1) == "$(devno "$orig")" ]]
	[[ $(status_field "$low" 3) == attached ]]
	[[ $(status_field "$low" 4) == "$(devno "/dev/mapper/$name")" ]]
	dmsetup table "$name" | grep -qw "$(devno "/dev/mapper/$low")"
}

@test "create --interpose: era stack on a mounted ext4 under write load, one command each way" {
	local dev=${DMI_PDISK}1 sz mnt meta seq r0
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" ext4 era)
	write_files "$mnt" pre 4 256
	meta=$(new_loop 16)
	seq=$(diskseq_of "$dev")
	start_load "$mnt"
	dmsetup create era --interpose --table "0 $sz era $meta [interpose]$dev 128"
	# The udev cookie: both nodes exist when dmsetup returns.
	stack_ok era "$dev"
	[[ $(status_field era-interposer 2) == "$seq" ]]
	dmsetup table era-interposer | grep -q "diskseq $seq"
	# info and ls --tree name the interposed device, its diskseq, the lower device.
	dmsetup info era | grep -E "^Interposes: +$(basename "$dev") \($(devno "$dev")\), diskseq $seq, through era-interposer "
	dmsetup info era-interposer | grep -E "^Interposer of: +$(basename "$dev") \($(devno "$dev")\), diskseq $seq, attached to era "
	dmsetup ls --tree | grep -E "era-interposer .*\[interposes $(basename "$dev") \($(devno "$dev")\), diskseq $seq\]"
	dmsetup message era 0 checkpoint
	r0=$(redirected era-interposer)
	write_files "$mnt" during 8 256
	sync
	(($(redirected era-interposer) > r0))
	stop_load
	dmsetup remove era
	[[ ! -e /dev/mapper/era && ! -e /dev/mapper/era-interposer ]]
	nothing_left "remove"
	write_files "$mnt" after 2 256
	verify_files "$mnt" pre
	verify_files "$mnt" during
	verify_files "$mnt" after
	umount "$mnt"
	fsck_clean "$dev" ext4
}

@test "create --interpose: snapshot-origin + snapshot of a mounted XFS whole disk under write load" {
	local dev=$DMI_WDISK sz mnt cow snapmnt
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" xfs origin)
	cow=$(new_loop 256)
	start_load "$mnt"
	# The table on standard input, as in the blk_interposer v8 series.
	echo "0 $sz snapshot-origin [interpose]$dev" | dmsetup create origin --interpose
	stack_ok origin "$dev"
	write_files "$mnt" snap 8 256
	cp "$BATS_TEST_TMPDIR/snap.sums" "$BATS_TEST_TMPDIR/old.sums"
	# Suspending the origin freezes the filesystem on the original device.
	dmsetup suspend origin
	dmsetup create snap --table "0 $sz snapshot /dev/mapper/origin-interposer $cow P 8"
	dmsetup resume origin
	write_files "$mnt" snap 8 256
	sync
	stop_load
	# The origin is in use by the snapshot: remove refuses, nothing changes.
	fails dmsetup remove origin
	stack_ok origin "$dev"
	snapmnt=$DMI_MNT/snap
	mkdir -p "$snapmnt"
	mount -o nouuid /dev/mapper/snap "$snapmnt"
	(cd "$snapmnt" && sha256sum --quiet -c "$BATS_TEST_TMPDIR/old.sums")
	umount "$snapmnt"
	dmsetup remove snap
	dmsetup remove origin
	nothing_left "remove"
	verify_files "$mnt" snap
	umount "$mnt"
	fsck_clean "$dev" xfs
}

@test "reload --interpose changes the upper table of a live linear stack" {
	local dev=${DMI_PDISK}2 sz mnt r0
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" ext4 lin)
	start_load "$mnt"
	dmsetup create lin --interpose --table "0 $sz linear [interpose]$dev 0"
	stack_ok lin "$dev"
	write_files "$mnt" a 4 256
	# A delay target in place of the linear one, live.
	dmsetup reload lin --interpose --table "0 $sz delay [interpose]$dev 0 0"
	dmsetup resume lin
	[[ $(dmsetup table lin | awk '{ print $3 }') == delay ]]
	stack_ok lin "$dev"
	r0=$(redirected lin-interposer)
	write_files "$mnt" b 4 256
	sync
	(($(redirected lin-interposer) > r0))
	# Refused: a table without the interposed device, another size, a
	# device the stack does not interpose; a reload of a plain device.
	fails dmsetup reload lin --interpose --table "0 $sz zero"
	fails dmsetup reload lin --interpose --table "0 $((sz - 8)) linear [interpose]$dev 0"
	fails dmsetup reload lin --interpose --table "0 $sz linear [interpose]${DMI_PDISK}1 0"
	[[ $(dmsetup info -c --noheadings -o attr lin) != *i* ]] # no inactive table
	dmsetup create plain --table "0 8 zero"
	run dmsetup reload plain --interpose --table "0 8 zero"
	((status != 0))
	[[ $output == *"not the destination of an interposer"* ]]
	dmsetup remove plain
	stop_load
	dmsetup remove lin
	nothing_left "remove"
	verify_files "$mnt" a
	verify_files "$mnt" b
	umount "$mnt"
	fsck_clean "$dev" ext4
}

@test "create NAME --interpose DEVICE: the pass-through form" {
	local dev=${DMI_PDISK}1 mnt r0
	mnt=$(mkfs_mount "$dev" ext4 one)
	write_files "$mnt" pre 4 256
	dmsetup create one --interpose "$dev"
	[[ $(dmsetup info -c --noheadings -o uuid one) == INTERPOSE-one ]]
	[[ $(status_field one 3) == attached ]]
	[[ $(status_field one 4) == "$(devno /dev/mapper/one)" ]]
	dmsetup info one | grep -E "^Interposes: +$(basename "$dev") .*attached to itself one "
	# Its redirect is idle (attach): the writes go to the device itself.
	write_files "$mnt" during 4 256
	sync
	echo 3 >/proc/sys/vm/drop_caches
	verify_files "$mnt" during
	# --force must not put an error table in the way of the mounted fs.
	dmsetup remove --force one
	nothing_left "remove"
	write_files "$mnt" after 2 256
	verify_files "$mnt" pre
	verify_files "$mnt" during
	umount "$mnt"
	fsck_clean "$dev" ext4
}

@test "create --interpose: diskseq pinned, bad tokens and devices refused, nothing left" {
	local dev=${DMI_PDISK}1 sz seq
	sz=$(sectors "$dev")
	seq=$(diskseq_of "$dev")
	dmsetup create pin --interpose --table "0 $sz linear [interpose,diskseq=$seq]$dev 0"
	stack_ok pin "$dev"
	dmsetup remove pin
	nothing_left "pinned"
	# A wrong diskseq: the kernel refuses the lower device.
	expect_refused "has diskseq $seq, the table expects $((seq + 100))" \
		dmsetup create pin --interpose --table "0 $sz linear [interpose,diskseq=$((seq + 100))]$dev 0"
	nothing_left "wrong diskseq"
	local -a bad=(
		"linear [interpose,diskseq=abc]$dev 0|Invalid diskseq"
		"linear [interpose,diskseq=0]$dev 0|Invalid diskseq"
		"linear [interpose,foo=1]$dev 0|Unknown \[interpose\] option"
		"linear [interpose] 0|must be followed by a device"
		"linear [interpose]/dev/nonexistent 0|Cannot open /dev/nonexistent"
		"linear [interpose]/etc/passwd 0|not a block device"
		"linear 7:0 0|has no \[interpose\]"
		"linear [interpose]$dev 0 linear [interpose]$(devno "$dev") 0|are the same device"
	)
	local b tbl msg
	for b in "${bad[@]}"; do
		tbl=${b%|*} msg=${b##*|}
		run dmsetup create bad --interpose --table "0 $sz $tbl"
		((status != 0)) || die "accepted: $tbl"
		[[ -z $msg || $output =~ $msg ]] || die "'$tbl': no message '$msg' in: $output"
		nothing_left "$tbl"
	done
	# Read-only: every write to the interposed device would fail.
	run dmsetup create ro --readonly --interpose --table "0 $sz linear [interpose]$dev 0"
	((status != 0))
	[[ $output == *"cannot be read-only"* ]]
	run dmsetup create ro --readonly --interpose "$dev"
	((status != 0))
	[[ $output == *"cannot be read-only"* ]]
	nothing_left "read-only"
	# The name of the lower device is taken: refused, the other untouched.
	dmsetup create bad-interposer --table "0 8 zero"
	run dmsetup create bad --interpose --table "0 $sz linear [interpose]$dev 0"
	((status != 0))
	[[ $output == *"a device of that name exists"* ]]
	[[ $(dmsetup table bad-interposer | awk '{ print $3 }') == zero ]]
	dmsetup remove bad-interposer
	# An interposed device cannot be interposed twice.
	dmsetup create one --interpose "$dev"
	expect_refused "already interposed" \
		dmsetup create two --interpose --table "0 $sz linear [interpose]$dev 0"
	fails grep -q '^two' <(dmsetup ls)
	dmsetup remove one
	nothing_left "twice"
}

@test "create --interpose is refused with a clear message without the interpose target" {
	local dev=${DMI_PDISK}1
	# The kernel would load the module for the query where it can (the
	# native lane's in-tree module): no module loading for this test.
	DMI_MODPROBE=$(cat /proc/sys/kernel/modprobe)
	echo /bin/false >/proc/sys/kernel/modprobe
	rmmod dm_interpose
	run dmsetup create nt --interpose --table "0 $(sectors "$dev") linear [interpose]$dev 0"
	((status != 0))
	[[ $output == *'no "interpose" device-mapper target'* ]]
	run dmsetup create nt --interpose "$dev"
	((status != 0))
	[[ $output == *'no "interpose" device-mapper target'* ]]
	echo "$DMI_MODPROBE" >/proc/sys/kernel/modprobe
	DMI_MODPROBE=
	insmod "$DMI_MODULE"
	nothing_left "no target"
}

# The failure-point tests fail DM ioctl 1, 1 + stride, ...: every one by
# default; the native lane (make check-native) passes a larger stride, as
# these tests exercise libdevmapper, not the kernel's hook.
DMI_FAIL_STRIDE=${DMI_FAIL_STRIDE:-1}

# Run CMD... with the Nth DM ioctl failing: with_failure N CMD...
with_failure() {
	local n=$1
	shift
	LD_PRELOAD=$BATS_FILE_TMPDIR/dm-ioctl-fail.so DMI_FAIL_AT=$n "$@"
}

# How many DM ioctls CMD... makes: ioctl_count CMD...
ioctl_count() {
	LD_PRELOAD=$BATS_FILE_TMPDIR/dm-ioctl-fail.so DMI_FAIL_COUNT=$BATS_TEST_TMPDIR/count "$@" >&2
	cat "$BATS_TEST_TMPDIR/count"
}

@test "create --interpose: every DM ioctl made to fail in turn leaves nothing behind" {
	local dev=${DMI_PDISK}1 sz mnt meta total n failed=0
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" ext4 fail)
	write_files "$mnt" pre 4 256
	meta=$(new_loop 16)
	start_load "$mnt"
	local -a create=(dmsetup create era --interpose --table "0 $sz era $meta [interpose]$dev 128")
	total=$(ioctl_count "${create[@]}")
	stack_ok era "$dev"
	dmsetup remove era
	nothing_left "clean run"
	((total >= 8)) || die "only $total DM ioctls in create --interpose"
	for ((n = 1; n <= total; n += DMI_FAIL_STRIDE)); do
		if with_failure "$n" "${create[@]}" 2>"$BATS_TEST_TMPDIR/err"; then
			# A failed query that the command does not depend on.
			stack_ok era "$dev"
			dmsetup remove era
		else
			failed=$((failed + 1))
			grep -q "dm-ioctl-fail: failing DM ioctl #$n" "$BATS_TEST_TMPDIR/err" ||
				die "ioctl $n: the command failed without the injected failure"
		fi
		nothing_left "create, DM ioctl $n of $total failed"
		# Still a working, uninterposed filesystem.
		write_files "$mnt" "f$n" 1 64
	done
	echo "create: $total DM ioctls, failed in turn (stride $DMI_FAIL_STRIDE), $failed failures cleaned up" >&2
	((failed >= 6 / DMI_FAIL_STRIDE))
	stop_load
	verify_files "$mnt" pre
	for ((n = 1; n <= total; n += DMI_FAIL_STRIDE)); do verify_files "$mnt" "f$n"; done
	umount "$mnt"
	fsck_clean "$dev" ext4
}

@test "remove of a stack: every DM ioctl made to fail in turn leaves it whole or gone" {
	local dev=${DMI_PDISK}1 sz mnt total n failed=0
	sz=$(sectors "$dev")
	mnt=$(mkfs_mount "$dev" ext4 rmfail)
	write_files "$mnt" pre 4 256
	start_load "$mnt"
	dmsetup create st --interpose --table "0 $sz linear [interpose]$dev 0"
	total=$(ioctl_count dmsetup remove st)
	nothing_left "clean run"
	((total >= 6)) || die "only $total DM ioctls in remove"
	for ((n = 1; n <= total; n += DMI_FAIL_STRIDE)); do
		dmsetup create st --interpose --table "0 $sz linear [interpose]$dev 0"
		if with_failure "$n" dmsetup remove st 2>"$BATS_TEST_TMPDIR/err"; then
			nothing_left "remove, DM ioctl $n ignored"
			continue
		fi
		failed=$((failed + 1))
		if dmsetup info st >/dev/null 2>&1; then
			# Refused or undone: the stack is whole and still attached.
			stack_ok st "$dev"
			dmsetup remove st
		else
			# The last step failed: only the lower device is left,
			# detached, and the message names it.
			grep -q "Failed to remove interposer st-interposer" "$BATS_TEST_TMPDIR/err" ||
				die "ioctl $n: st gone but: $(cat "$BATS_TEST_TMPDIR/err")"
			[[ $(status_field st-interposer 3) == passthrough ]]
			dmsetup remove st-interposer
		fi
		nothing_left "remove, DM ioctl $n of $total failed"
		write_files "$mnt" "f$n" 1 64
	done
	echo "remove: $total DM ioctls, failed in turn (stride $DMI_FAIL_STRIDE), $failed failures cleaned up" >&2
	((failed >= 4 / DMI_FAIL_STRIDE))
	stop_load
	verify_files "$mnt" pre
	for ((n = 1; n <= total; n++)); do [[ ! -e $BATS_TEST_TMPDIR/f$n.sums ]] || verify_files "$mnt" "f$n"; done
	umount "$mnt"
	fsck_clean "$dev" ext4
}
