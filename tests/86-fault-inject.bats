#!/usr/bin/env bats
# Torture: kernel fault injection (the debug kernel of --kernel native:
# CONFIG_FAILSLAB, CONFIG_FAIL_MAKE_REQUEST, debugfs). Every slab allocation
# of a table load is made to fail in turn (fail-nth), for a pass-through, an
# attach and an attach_to table, and of the resume that attaches, on a
# mounted fs under a write load: each fails cleanly, the last succeeds, and
# kmemleak finds nothing. Bios of an interposed partition, and of the DM
# device in the way, fail with EIO (fail_make_request): no hang, I/O works
# again after the faults, the data written before them is intact, and the
# interposer detaches and goes. The module unloads after each test.
# Resume faults (each costs a detach and a reload): the first 6 allocations
# of the attach_to resume; DMI_TORTURE=long: all, of attach and attach_to.
# Load faults: every 5th allocation (1, 6, 11, ...); DMI_TORTURE=long: every
# one (DMI_FI_STRIDE sets the stride).
# cost: 12

load lib

DBG=/sys/kernel/debug

setup_file() {
	# The shim that arms fail-nth around one DM ioctl.
	cc -O2 -Wall -shared -fPIC -o "$BATS_FILE_TMPDIR/dm-fail-nth.so" \
		"$BATS_TEST_DIRNAME/helpers/dm-fail-nth.c" -ldl
}

setup() {
	dmi_require_guest
	FI_STRIDE=${DMI_FI_STRIDE:-$(torture_n 5 1)}
	mountpoint -q "$DBG" || mount -t debugfs debugfs "$DBG"
	[[ -d $DBG/failslab && -d $DBG/fail_make_request ]] ||
		die "no $DBG/failslab or fail_make_request: fault injection needs the debug kernel (vm-run --kernel native), this one is $(uname -r)"
	[[ -e /proc/thread-self/fail-nth ]] || die "no /proc/thread-self/fail-nth (CONFIG_FAULT_INJECTION)"
	SHIM=$BATS_FILE_TMPDIR/dm-fail-nth.so
}

teardown() {
	faults_off
	# A fs that aborted its journal cannot be frozen: the detach of
	# dmi_cleanup (lockfs) would fail while it is mounted.
	[[ ! -d $DMI_MNT/fmr ]] || umount "$DMI_MNT/fmr" 2>/dev/null || true
	dmi_cleanup_unload
}

# Every fault source back to its default: nothing fails.
faults_off() {
	local f
	echo 0 >"$DBG/failslab/probability" 2>/dev/null || true
	echo Y >"$DBG/failslab/ignore-gfp-wait" 2>/dev/null || true
	if [[ -d $DBG/fail_page_alloc ]]; then
		echo 0 >"$DBG/fail_page_alloc/probability" 2>/dev/null || true
		echo Y >"$DBG/fail_page_alloc/ignore-gfp-wait" 2>/dev/null || true
	fi
	echo 0 >"$DBG/fail_make_request/probability" 2>/dev/null || true
	for f in /sys/block/*/make-it-fail /sys/block/*/*/make-it-fail; do
		[[ -e $f ]] || continue
		[[ $(cat "$f") == 0 ]] || echo 0 >"$f"
	done
}

# --- failslab, systematically ---

# dmsetup under the shim, failing the Nth allocation of one ioctl:
# nth_dmsetup N load|resume DMSETUP-ARGS... Sets INJ (1: the fault was
# injected) and RC (dmsetup's status); a hang fails the test.
nth_dmsetup() {
	local n=$1 which=$2 rep=$BATS_TEST_TMPDIR/nth.rep
	shift 2
	: >"$rep"
	RC=0
	DMI_FAIL_NTH=$n DMI_FAIL_NTH_IOCTL=$which DMI_FAIL_NTH_REPORT=$rep LD_PRELOAD=$SHIM \
		timeout -k 10 120 dmsetup "$@" >/dev/null 2>"$BATS_TEST_TMPDIR/nth.err" || RC=$?
	((RC != 124 && RC != 137)) || die "dmsetup $* hung with allocation $n of the $which failing"
	[[ -s $rep ]] || die "dmsetup $*: the shim armed no $which ioctl"
	read -r INJ _ _ <"$rep"
}

# The device is as it was: no inactive table, the live state STATE
# ("" for no table; checked every 8th time: a load does not touch the live
# table, and each dmsetup costs seconds in a debug TCG guest), the write
# load alive: unchanged NAME STATE CONTEXT N
unchanged() {
	local attr
	attr=$(dmsetup info -c --noheadings -o attr "$1") || die "$3: $1 is gone"
	[[ $attr != ?I* ]] || die "$3: a failed load left an inactive table in $1"
	if [[ -n $2 ]] && (($4 % 8 == 0)); then
		[[ $(status_field "$1" 3) == "$2" ]] || die "$3: $1 is $(status_field "$1" 3), expected $2"
	fi
	kill -0 "$LOAD_PID" 2>/dev/null || die "$3: the write load on the mounted fs stopped"
}

# Fail allocation 1, 2, ... of the load of TABLE into NAME until the load
# makes fewer allocations than N (then the table is loaded, not resumed):
# nth_load NAME STATE TABLE. STATE: the live state, unchanged by a failure.
nth_load() {
	local name=$1 state=$2 table=$3 n
	for ((n = 1; n <= 1000; n += FI_STRIDE)); do
		nth_dmsetup "$n" load reload "$name" --table "$table"
		if ((RC == 0)); then
			if ((INJ)); then
				# The kernel coped with the failed allocation.
				FI_TOLERATED=$((FI_TOLERATED + 1))
				dmsetup clear "$name"
				continue
			fi
			echo "# failslab: load of '${table#0 * interpose }': allocations 1..$((n - 1)) (every $FI_STRIDE) failed in turn" >&3
			return 0
		fi
		((INJ)) || { cat "$BATS_TEST_TMPDIR/nth.err" >&2; die "load failed without a fault injected (N=$n)"; }
		FI_FAULTS=$((FI_FAULTS + 1))
		unchanged "$name" "$state" "load, allocation $n failing" "$n"
	done
	die "the load of $table did not succeed after $n faults"
}

# Fail allocation 1, 2, ... (up to MAX) of the resume that attaches NAME with
# TABLE (loaded): each failure must leave the device recoverable (a plain
# resume, a reload at worst, attaches it); then it is detached (DETACH, a
# pass-through table) and TABLE loaded again: nth_resume NAME TABLE DETACH MAX
nth_resume() {
	local name=$1 table=$2 detach=$3 max=$4 n
	for ((n = 1; n <= max; n++)); do
		nth_dmsetup "$n" resume resume "$name"
		if ((RC == 0 && !INJ)); then
			[[ $(status_field "$name" 3) == attached ]] || die "resume succeeded, $name not attached"
			echo "# failslab: resume of '${table#0 * interpose }': $((n - 1)) allocations failed in turn" >&3
			return 0
		fi
		if ((INJ)); then
			((RC == 0)) || FI_FAULTS=$((FI_FAULTS + 1))
			((RC != 0)) || FI_TOLERATED=$((FI_TOLERATED + 1))
		else
			cat "$BATS_TEST_TMPDIR/nth.err" >&2
			die "resume failed without a fault injected (N=$n)"
		fi
		kill -0 "$LOAD_PID" 2>/dev/null || die "resume, allocation $n failing: the write load stopped"
		# Recover: resume (the device may be suspended, with either table).
		timeout -k 10 120 dmsetup resume "$name" ||
			die "resume, allocation $n failing: $name does not resume afterwards"
		if [[ $(status_field "$name" 3) != attached ]]; then
			timeout -k 10 120 dmsetup reload "$name" --table "$table"
			timeout -k 10 120 dmsetup resume "$name"
		fi
		[[ $(status_field "$name" 3) == attached ]] ||
			die "resume, allocation $n failing: $name cannot be attached afterwards"
		# Detach, and load the attach table for the next one.
		timeout -k 10 120 dmsetup reload "$name" --table "$detach"
		timeout -k 10 120 dmsetup resume "$name"
		[[ $(status_field "$name" 3) == passthrough ]] || die "cannot detach $name after fault $n"
		timeout -k 10 120 dmsetup reload "$name" --table "$table"
	done
	# Not all of them (short run): attach without a fault.
	echo "# failslab: resume of '${table#0 * interpose }': the first $max allocations failed in turn" >&3
	timeout -k 10 120 dmsetup resume "$name"
	[[ $(status_field "$name" 3) == attached ]] || die "$name not attached"
}

# kmemleak: no leak that involves the target (two scans, as an object is
# reported only once it has stayed unreferenced over a scan).
kmemleak_check() {
	local out
	[[ -e $DBG/kmemleak ]] || die "no $DBG/kmemleak (CONFIG_DEBUG_KMEMLEAK)"
	echo scan >"$DBG/kmemleak"
	sleep 5
	echo scan >"$DBG/kmemleak"
	out=$(cat "$DBG/kmemleak")
	if [[ -n $out ]]; then
		echo "$out" | head -n 60 >&2
		if grep -q interpose <<<"$out"; then
			die "kmemleak: leaks involving dm_interpose"
		fi
		echo "# kmemleak: $(grep -c '^unreferenced object' <<<"$out") leaks, none in dm_interpose" >&3
	fi
}

# The mounted fs (on the first partition) under a write load, the fault
# setup, and a pass-through device "low" on it: failslab_start
failslab_start() {
	FS_DEV=${DMI_PDISK}1
	FS_SZ=$(sectors "$FS_DEV")
	PASS="0 $FS_SZ interpose $(devno "$FS_DEV")"
	FI_FAULTS=0 FI_TOLERATED=0
	[[ -e $DBG/kmemleak ]] || die "no $DBG/kmemleak (CONFIG_DEBUG_KMEMLEAK)"
	# Forget what is unreferenced now: the leaks reported are this test's.
	echo clear >"$DBG/kmemleak"
	# A device of the same target type kept for the whole test: its bioset
	# keeps the bio slab cache of the target's size alive, so a load does
	# not create it. (A failed kmem_cache_create() dumps a stack by design,
	# and, in 6.12, leaks the cache's kobject name: core kernel, not ours.)
	KEEP=$(new_loop 16)
	dmsetup create keep --table "0 $(sectors "$KEEP") interpose $KEEP"
	FS_MNT=$(mkfs_mount "$FS_DEV" ext4 failslab)
	write_files "$FS_MNT/data" pre 8 256
	start_load "$FS_MNT"
	# Allocations that may sleep can fail too; one line per fault, no stack.
	echo N >"$DBG/failslab/ignore-gfp-wait"
	echo 1 >"$DBG/failslab/verbose"
	if [[ -d $DBG/fail_page_alloc ]]; then
		echo N >"$DBG/fail_page_alloc/ignore-gfp-wait"
		echo 1 >"$DBG/fail_page_alloc/verbose"
	fi
}

# Detach, remove, check the data and kmemleak, emit the figure: failslab_end
failslab_end() {
	local lost=0
	echo Y >"$DBG/failslab/ignore-gfp-wait"
	stop_load
	lower_reload low "$FS_DEV"
	dmsetup remove up 2>/dev/null || true
	dmsetup remove low
	verify_files "$FS_MNT/data" pre || lost=1
	write_files "$FS_MNT/data" post 4 256
	umount "$FS_MNT"
	fsck_clean "$FS_DEV" ext4 >/dev/null || lost=1
	mount "$FS_DEV" "$FS_MNT"
	verify_files "$FS_MNT/data" post || lost=1
	umount "$FS_MNT"
	dmsetup remove keep
	kmemleak_check
	figure "failslab table load" "faults=$FI_FAULTS lost=$lost"
	echo "# failslab: $FI_FAULTS faults failed their ioctl, $FI_TOLERATED were coped with" >&3
	((lost == 0))
}

failslab_passthrough() {
	failslab_start
	# Loaded into a device without a table.
	dmsetup create --notable low
	nth_load low "" "$PASS"
	timeout -k 10 120 dmsetup resume low
	[[ $(status_field low 3) == passthrough ]]
	failslab_end
}

failslab_attach() {
	failslab_start
	dmsetup create low --table "$PASS"
	nth_load low passthrough "$PASS 2 attach no_direct"
	nth_resume low "$PASS 2 attach no_direct" "$PASS" "$(torture_n 0 1000)"
	(($(redirected low) > 0)) || { sleep 2; (($(redirected low) > 0)); }
	failslab_end
}

failslab_attach_to() {
	local up
	failslab_start
	dmsetup create low --table "$PASS"
	dmsetup create up --table "0 $FS_SZ linear /dev/mapper/low 0"
	up=$(devno /dev/mapper/up)
	nth_load low passthrough "$PASS 2 attach_to $up"
	nth_resume low "$PASS 2 attach_to $up" "$PASS" "$(torture_n 6 1000)"
	[[ $(status_field low 4) == "$up" ]]
	sleep 1
	(($(redirected low) > 0))
	failslab_end
}

# The short variant: the attach_to table (its load makes the allocations of
# the other two and more); DMI_TORTURE=long: all three.
@test "failslab: allocations of table loads and of the attaching resume fail in turn" {
	if [[ ${DMI_TORTURE:-} == long ]]; then
		failslab_passthrough
		dmi_cleanup
		failslab_attach
		dmi_cleanup
	fi
	failslab_attach_to
}

# --- fail_make_request ---

# Arm fail_make_request for K bios of the device whose make-it-fail is FLAG:
# fmr_on FLAG K
fmr_on() {
	echo 1 >"$DBG/fail_make_request/verbose"
	echo 0 >"$DBG/fail_make_request/space"
	echo 1 >"$DBG/fail_make_request/interval"
	echo "$2" >"$DBG/fail_make_request/times"
	echo 100 >"$DBG/fail_make_request/probability"
	echo 1 >"$1"
}

fmr_off() {
	echo 0 >"$1"
	echo 0 >"$DBG/fail_make_request/probability"
}

# With make-it-fail on FLAG, K faults: O_DIRECT writes to DEV (at MiB
# OFFSET) fail with EIO until the K faults are used up; then they work
# again. Adds the faults seen to FMR_FAULTS: fmr_case FLAG K DEV OFFSET
fmr_case() {
	local flag=$1 k=$2 dev=$3 off=$4 i eio=0 left rc err=$BATS_TEST_TMPDIR/dd.err
	dmesg_mark
	fmr_on "$flag" "$k"
	for ((i = 0; i < 10 * k; i++)); do
		rc=0
		timeout -k 10 60 dd if=/dev/urandom of="$dev" bs=4k count=1 seek=$((off * 256 + i % 256)) \
			oflag=direct status=none 2>"$err" || rc=$?
		((rc != 124 && rc != 137)) || die "dd to $dev hung with fail_make_request armed"
		((rc)) || break
		grep -q "Input/output error" "$err" || { cat "$err" >&2; die "dd failed, not with EIO"; }
		eio=$((eio + 1))
	done
	left=$(cat "$DBG/fail_make_request/times")
	fmr_off "$flag"
	((eio > 0)) || die "no write failed with make-it-fail on $flag"
	((rc == 0)) || die "writes still fail after $k faults"
	FMR_FAULTS=$((FMR_FAULTS + k - left))
	echo "# fail_make_request ($flag): $eio writes got EIO, $((k - left)) bios failed" >&3
	if dmesg_since | grep -Eq "$SPLAT_RE"; then
		dmesg_since >&2
		die "kernel problem with fail_make_request on $flag"
	fi
	# I/O works again, through the interposer.
	head -c 1M /dev/urandom >"$BATS_TEST_TMPDIR/again"
	timeout -k 10 60 dd if="$BATS_TEST_TMPDIR/again" of="$dev" bs=1M seek="$((off + 1))" oflag=direct status=none
	cmp <(timeout -k 10 60 dd if="$dev" bs=1M skip="$((off + 1))" count=1 iflag=direct status=none) \
		"$BATS_TEST_TMPDIR/again"
}

SPLAT_RE='Oops|BUG:|WARNING:|Call Trace|general protection fault|KASAN|possible circular locking|blocked for more than|refcount_t:'

@test "fail_make_request: EIO from an interposed partition and from the DM device, then I/O and detach work" {
	local dev=${DMI_PDISK}1 disk part sz mnt dm lost=0 k
	disk=$(basename "$DMI_PDISK") part=$(basename "$dev")
	sz=$(sectors "$dev")
	k=$(torture_n 16 200)
	FMR_FAULTS=0
	# ext4 on the first 384 MiB of the partition; the rest is raw, for the
	# data check (a fs that saw EIO may need fsck).
	mkfs.ext4 -q -F "$dev" 384M
	mkdir -p "$DMI_MNT/fmr"
	mnt=$DMI_MNT/fmr
	mount "$dev" "$mnt"
	write_files "$mnt/data" pre 4 256
	sync
	head -c 16M /dev/urandom >"$BATS_TEST_TMPDIR/raw"
	dd if="$BATS_TEST_TMPDIR/raw" of="$dev" bs=1M seek=400 oflag=direct conv=fsync status=none
	lower_create low "$dev" attach no_direct # busy: the DM device is in the way
	[[ $(status_field low 3) == attached ]]
	dm=$(basename "$(realpath /dev/mapper/low)")

	# The partition fails.
	fmr_case "/sys/block/$disk/$part/make-it-fail" "$k" "$dev" 440
	(($(redirected low) > 0))
	# The DM device in the way fails (its bios are the partition's, redirected).
	fmr_case "/sys/block/$dm/make-it-fail" "$k" "$dev" 460
	# The whole disk fails (the bios the target passes down).
	fmr_case "/sys/block/$disk/make-it-fail" "$k" "$dev" 480
	[[ $(status_field low 3) == attached ]]

	# Detach and remove; the data written before the faults is intact. The
	# fs may have aborted its journal on an EIO: it then refuses to freeze,
	# and a detach that freezes it (DM's lockfs) fails; hence --nolockfs.
	timeout -k 10 120 dmsetup reload low --table "0 $sz interpose $dev"
	timeout -k 10 120 dmsetup resume --nolockfs low
	[[ $(status_field low 3) == passthrough ]]
	timeout -k 10 120 dmsetup remove low
	echo 3 >/proc/sys/vm/drop_caches
	cmp <(dd if="$dev" bs=1M skip=400 count=16 iflag=direct status=none) "$BATS_TEST_TMPDIR/raw" || lost=1
	verify_files "$mnt/data" pre || lost=1
	umount "$mnt"
	figure "fail_make_request" "faults=$FMR_FAULTS lost=$lost"
	((lost == 0))
}
