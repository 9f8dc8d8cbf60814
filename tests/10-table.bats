#!/usr/bin/env bats
# Table syntax, status and table output, and every refusal with its message.
# cost: 4

load lib

setup() {
	dmi_require_guest
	LOOP=$(new_loop 64)
	SZ=$(sectors "$LOOP")
}

teardown() {
	dmi_cleanup
}

# The status line has 7 fields after "START LEN interpose", in every state:
# the udev helper, lvm's segment type, dm-interpose-activate and these
# tests read them by position.
status_words() {
	local words
	read -r -a words <<<"$(dmsetup status "$1")"
	((${#words[@]} == 10)) || die "status of $1 has ${#words[@]} words, expected 3 + 7: ${words[*]}"
}

@test "pass-through: status fields and table round trip" {
	lower_create low "$LOOP"
	read -r orig seq state dest red _ hook <<<"$(dmsetup status low | cut -d' ' -f4-)"
	[[ $orig == "$(devno "$LOOP")" ]]
	[[ $seq == "$(diskseq_of "$LOOP")" ]]
	[[ $state == passthrough && $dest == - && $red == 0 && $hook == "$DMI_HOOK" ]]
	status_words low
	[[ $(dmsetup table low) == "0 $SZ interpose $(devno "$LOOP")" ]]
	# I/O through the lower device lands on the original, counted as passed.
	head -c 1M /dev/urandom >"$BATS_TEST_TMPDIR/d"
	dd if="$BATS_TEST_TMPDIR/d" of=/dev/mapper/low bs=64k seek=3 oflag=direct status=none
	cmp <(dd if="$LOOP" bs=64k skip=3 count=16 iflag=direct status=none) "$BATS_TEST_TMPDIR/d"
	(($(passed low) >= 16))
	# The table line reloads as printed.
	dmsetup reload low --table "$(dmsetup table low)"
	dmsetup resume low
}

@test "attach and attach_to tables print as given and reload" {
	lower_create low "$LOOP" attach diskseq "$(diskseq_of "$LOOP")"
	[[ $(dmsetup table low) == "0 $SZ interpose $(devno "$LOOP") 3 attach diskseq $(diskseq_of "$LOOP")" ]]
	[[ $(status_field low 3) == attached ]]
	[[ $(status_field low 4) == "$(devno /dev/mapper/low)" ]]
	status_words low
	lower_reload low "$LOOP"
	dmsetup create up --table "0 $SZ linear /dev/mapper/low 0"
	lower_reload low "$LOOP" attach_to /dev/mapper/up
	[[ $(dmsetup table low) == "0 $SZ interpose $(devno "$LOOP") 2 attach_to $(devno /dev/mapper/up)" ]]
	[[ $(status_field low 4) == "$(devno /dev/mapper/up)" ]]
	dmsetup reload low --table "$(dmsetup table low)"
	dmsetup resume low
	[[ $(status_field low 3) == attached ]]
	# freeze: printed last, reloads as printed, the redirect stays.
	lower_reload low "$LOOP" freeze attach_to /dev/mapper/up
	[[ $(dmsetup table low) == "0 $SZ interpose $(devno "$LOOP") 3 attach_to $(devno /dev/mapper/up) freeze" ]]
	dmsetup reload low --table "$(dmsetup table low)"
	dmsetup resume low
	[[ $(status_field low 4) == "$(devno /dev/mapper/up)" ]]
}

@test "refused: missing, non-block and unopenable original device" {
	expect_refused "Cannot find original device" dmsetup create bad --table "0 $SZ interpose /dev/does-not-exist"
	expect_refused "Cannot find original device" dmsetup create bad --table "0 $SZ interpose /etc/passwd"
	# A loop device with nothing bound (losetup -f makes one through
	# loop-control; a kernel without BLOCK_LEGACY_AUTOLOAD, such as the
	# native lane's, does not make one when a missing minor is opened).
	local free
	free=$(losetup -f)
	settle
	expect_refused "Original device is empty" dmsetup create bad --table "0 $SZ interpose $(devno "$free")"
	expect_refused "Cannot open original device" dmsetup create bad --table "0 $SZ interpose 240:7"
	expect_refused "Missing original device" dmsetup create bad --table "0 $SZ interpose"
	fails dmsetup info bad
}

@test "refused: table does not cover the whole device" {
	expect_refused "Table must cover the whole original device" dmsetup create bad --table "0 $((SZ - 8)) interpose $LOOP"
	expect_refused "Table must cover the whole original device" dmsetup create bad --table "0 $((SZ + 8)) interpose $LOOP"
	expect_refused "must appear alone|Table must cover" dmsetup create bad --table "0 8 zero
8 $SZ interpose $LOOP"
	expect_refused "must appear alone" dmsetup create bad --table "0 $SZ interpose $LOOP
$SZ 8 zero"
}

@test "refused: diskseq mismatch; accepted when it matches" {
	local seq
	seq=$(diskseq_of "$LOOP")
	expect_refused "Disk sequence number mismatch" dmsetup create bad --table "0 $SZ interpose $LOOP 2 diskseq $((seq + 1))"
	dmesg_since | grep -q "has diskseq $seq, the table expects $((seq + 1))"
	expect_refused "Invalid diskseq" dmsetup create bad --table "0 $SZ interpose $LOOP 2 diskseq nope"
	expect_refused "Invalid diskseq" dmsetup create bad --table "0 $SZ interpose $LOOP 2 diskseq 0"
	expect_refused "Invalid diskseq" dmsetup create bad --table "0 $SZ interpose $LOOP 2 diskseq 99999999999999999999999"
	lower_create ok "$LOOP" diskseq "$seq"
	# A device replaced under the same name gets a new diskseq and is refused.
	local file
	file=$(losetup -nO BACK-FILE "$LOOP")
	dmsetup remove ok
	losetup -d "$LOOP"
	losetup "$LOOP" "$file"
	expect_refused "Disk sequence number mismatch" dmsetup create bad --table "0 $SZ interpose $LOOP 2 diskseq $seq"
}

@test "refused: bad feature arguments" {
	expect_refused "Unrecognised feature argument" dmsetup create bad --table "0 $SZ interpose $LOOP 1 bogus"
	expect_refused "attach_to needs a device" dmsetup create bad --table "0 $SZ interpose $LOOP 1 attach_to"
	expect_refused "Insufficient|Invalid number of feature" dmsetup create bad --table "0 $SZ interpose $LOOP 3 attach"
	expect_refused "Invalid number of feature" dmsetup create bad --table "0 $SZ interpose $LOOP -1 attach"
	expect_refused "Invalid number of feature" dmsetup create bad --table "0 $SZ interpose $LOOP 4294967297 attach"
	expect_refused "Duplicate or conflicting attach" dmsetup create bad --table "0 $SZ interpose $LOOP 2 attach attach"
	expect_refused "Duplicate diskseq" dmsetup create bad --table "0 $SZ interpose $LOOP 4 diskseq 1 diskseq 1"
	expect_refused "Duplicate freeze" dmsetup create bad --table "0 $SZ interpose $LOOP 3 attach freeze freeze"
	expect_refused "Duplicate no_direct" dmsetup create bad --table "0 $SZ interpose $LOOP 3 attach no_direct no_direct"
	expect_refused "Duplicate reads_direct" dmsetup create bad --table "0 $SZ interpose $LOOP 3 attach reads_direct reads_direct"
	expect_refused "Invalid number of feature" dmsetup create bad --table "0 $SZ interpose $LOOP 8 attach_to /dev/null diskseq 1 freeze no_direct reads_direct x"
	expect_refused "Too many arguments" dmsetup create bad --table "0 $SZ interpose $LOOP 1 attach extra"
	expect_refused "Cannot find attach_to device" dmsetup create bad --table "0 $SZ interpose $LOOP 2 attach_to /nonexistent"
}

@test "refused: a device that already has an interposer" {
	lower_create one "$LOOP" attach
	expect_refused "Device already has an interposer" dmsetup create two --table "0 $SZ interpose $LOOP 1 attach"
	expect_refused "Device already has an interposer" dmsetup create two --table "0 $SZ interpose $LOOP"
	[[ $(status_field one 3) == attached ]]
}

@test "refused: attach_to a device that is not DM, of another size, or not stacked" {
	local other
	other=$(new_loop 64)
	lower_create low "$LOOP"
	expect_refused "attach_to device is not a device-mapper device" dmsetup reload low --table "0 $SZ interpose $LOOP 2 attach_to $other"
	dmsetup create small --table "0 $((SZ - 8)) linear /dev/mapper/low 0"
	expect_refused "attach_to device size differs" dmsetup reload low --table "0 $SZ interpose $LOOP 2 attach_to /dev/mapper/small"
	# Right size, but built on another device: refused when the redirect
	# would start (resume), and the device is left without a redirect.
	dmsetup create elsewhere --table "0 $SZ linear $other 0"
	dmsetup reload low --table "0 $SZ interpose $LOOP 2 attach_to /dev/mapper/elsewhere"
	dmesg_mark
	fails dmsetup resume low
	dmesg_since | grep -q "is not stacked on this device"
	[[ $(status_field low 3) != attached ]]
	lower_reload low "$LOOP"
	[[ $(status_field low 3) == passthrough ]]
}

@test "refused: interposing a device onto itself or into a cycle" {
	dmsetup create self --table "0 $SZ linear $LOOP 0"
	expect_refused "Cannot interpose a device onto itself" dmsetup reload self --table "0 $SZ interpose /dev/mapper/self"
	expect_refused "Cannot redirect a device to itself" dmsetup create bad --table "0 $SZ interpose $LOOP 2 attach_to $LOOP"
	# x <- y (y is stacked on x): x may not interpose y.
	dmsetup create y --table "0 $SZ linear /dev/mapper/self 0"
	expect_refused "Interposing would create a cycle" dmsetup reload self --table "0 $SZ interpose /dev/mapper/y"
	# The destination of a redirect cannot itself be interposed.
	lower_create low "$LOOP"
	dmsetup create up --table "0 $SZ linear /dev/mapper/low 0"
	lower_reload low "$LOOP" attach_to /dev/mapper/up
	expect_refused "redirect destination of an interposer" dmsetup create bad --table "0 $SZ interpose /dev/mapper/up"
}

@test "refused: zoned device" {
	modprobe null_blk nr_devices=1 zoned=1 gb=1 zone_size=64 memory_backed=1
	settle 120
	expect_refused "Zoned devices are not supported" dmsetup create bad --table "0 $(sectors /dev/nullb0) interpose /dev/nullb0"
	rmmod null_blk
}

@test "while attached: lower, destination and module cannot go away" {
	lower_create low "$LOOP"
	dmsetup create up --table "0 $SZ linear /dev/mapper/low 0"
	lower_reload low "$LOOP" attach_to /dev/mapper/up
	fails dmsetup remove up
	fails dmsetup remove low
	fails rmmod dm_interpose
	[[ $(status_field low 3) == attached ]]
	# The documented tear-down order works and frees the module.
	lower_reload low "$LOOP"
	dmsetup remove up
	dmsetup remove low
	rmmod dm_interpose
	insmod "$DMI_MODULE"
}

@test "attach mode: the device cannot be removed until detached" {
	lower_create low "$LOOP" attach
	fails dmsetup remove low
	[[ $(status_field low 3) == attached ]]
	lower_reload low "$LOOP"
	dmsetup remove low
}

@test "remove --force of an attached device detaches it; the mounted fs keeps working" {
	local mnt
	mnt=$(mkfs_mount "$LOOP" ext4 force)
	write_files "$mnt" a 4 256
	lower_create low "$LOOP" attach
	write_files "$mnt" b 4 256
	sync
	dmsetup remove --force low
	fails dmsetup info low
	write_files "$mnt" c 4 256
	sync
	verify_files "$mnt" a
	verify_files "$mnt" b
	verify_files "$mnt" c
	umount "$mnt"
	fsck_clean "$LOOP" ext4
}

# Is our kprobe on submit_bio_noacct registered (armed through ftrace, so
# ftrace lists the function)? Waits up to 60 s for the state asked for:
# unregistration is asynchronous, and waits for RCU grace periods, which
# take long in a guest whose host is busy with other guests.
hook_registered() {
	local want=$1 i
	for ((i = 0; i < 300; i++)); do
		if grep -q '^submit_bio_noacct' /sys/kernel/tracing/enabled_functions 2>/dev/null; then
			[[ $want == yes ]] && return 0
		else
			[[ $want == no ]] && return 0
		fi
		sleep 0.2
	done
	die "hook registered: expected $want"
}

# With the native hook nothing is ever registered with ftrace.
ftrace_wanted() {
	if [[ $DMI_HOOK == native ]]; then echo no; else echo "$1"; fi
}

# An attach table's redirect is idle while the device is resumed: the kprobe
# is disarmed then (no_direct keeps the redirect busy).
@test "the hook is armed only while a redirect is busy" {
	hook_registered no
	lower_create low "$LOOP"
	hook_registered no
	lower_reload low "$LOOP" attach no_direct
	hook_registered "$(ftrace_wanted yes)"
	[[ $(status_field low 3) == attached ]]
	lower_reload low "$LOOP" attach
	hook_registered no
	[[ $(status_field low 3) == attached ]]
	lower_reload low "$LOOP"
	hook_registered no
}

@test "the module uses the native hook exactly when the kernel has one" {
	[[ $(modinfo -F interpose_hook "$DMI_MODULE") == "$DMI_HOOK" ]]
	if [[ $VM_KERNEL == native* ]]; then
		[[ $DMI_HOOK == native ]] || die "the patched kernel has no bdev_interposer_attach"
	fi
	lower_create low "$LOOP" attach
	[[ $(dmsetup status low | awk '{print $NF}') == "$DMI_HOOK" ]]
}
