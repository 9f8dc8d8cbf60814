#!/usr/bin/env bats
# fstests (xfstests, built by scripts/build-fstests from shared/fstests) on
# plain devices and on the same devices interposed, in one guest: ext4 plain,
# with "attach_to" an era stack (and "attach", in make torture); XFS plain and "attach_to"
# a snapshot-origin stack with a live snapshot of each device. TEST_DEV and
# SCRATCH_DEV are always the original devices (the two whole disks: on
# partitions the stale page cache of an interposed original did not show),
# as a user of an interposed device keeps using them. A test
# that passes plain and does not pass interposed fails the suite; so does a
# test of the list that does not run plain (the suite would test less than
# it says). List: tests/fstests/short.list, long.list with DMI_TORTURE=long.
# cost: 15

load lib

setup() {
	dmi_require_guest
	FST=$DMI_TOP/build/fstests/src
	[[ -x $FST/check ]] || die "fstests not built: run scripts/build-fstests"
	FST_LIST=$DMI_TOP/tests/fstests/$(torture_n short long).list
	FST_TESTS=()
	local t
	while read -r t; do
		[[ -z $t || $t == \#* ]] || FST_TESTS+=("$t")
	done <"$FST_LIST"
	FST_MNT=$DMI_MNT/fst
	mkdir -p "$FST_MNT/test" "$FST_MNT/scratch"
}

teardown() {
	umount "$FST_MNT/scratch" 2>/dev/null || true
	umount "$FST_MNT/test" 2>/dev/null || true
	dmsetup remove_all 2>/dev/null || true
	dmi_cleanup
}

# Put NAME's stack in front of DEV: interpose NAME DEV attach|era|snapshot
interpose() {
	local name=$1 dev=$2 how=$3 sz meta cow
	sz=$(sectors "$dev")
	case $how in
	attach)
		lower_create "$name-low" "$dev" attach
		return
		;;
	era)
		meta=$(new_loop 64)
		lower_create "$name-low" "$dev"
		dmsetup create "$name-up" --table "0 $sz era $meta /dev/mapper/$name-low 128"
		;;
	snapshot)
		cow=$(new_loop 1024)
		lower_create "$name-low" "$dev"
		dmsetup create "$name-up" --table "0 $sz snapshot-origin /dev/mapper/$name-low"
		dmsetup create "$name-snap" --table "0 $sz snapshot /dev/mapper/$name-low $cow N 16"
		;;
	*) die "interpose: unknown stack $how" ;;
	esac
	lower_reload "$name-low" "$dev" attach_to "/dev/mapper/$name-up"
	[[ $(status_field "$name-low" 3) == attached ]]
}

# Take the stacks of NAME away again (detach first).
uninterpose() {
	local name=$1 dev=$2
	lower_reload "$name-low" "$dev"
	dmsetup remove "$name-snap" 2>/dev/null || true
	dmsetup remove "$name-up" 2>/dev/null || true
	dmsetup remove "$name-low"
}

# Run the list on FS in configuration CFG (plain, attach, era, snapshot);
# the results go to $BATS_TEST_TMPDIR/CFG.{log,failed,notrun}.
fst_run() {
	local fs=$1 cfg=$2 test_dev=$DMI_PDISK scratch_dev=$DMI_WDISK rc=0
	local out=$BATS_TEST_TMPDIR/$cfg
	wipefs -q -a "$test_dev"
	case $fs in
	ext4) mkfs.ext4 -q -F "$test_dev" ;;
	xfs) mkfs.xfs -q -f "$test_dev" ;;
	esac
	wipefs -q -a "$scratch_dev"
	if [[ $cfg != plain ]]; then
		interpose fsttest "$test_dev" "$cfg"
		interpose fstscratch "$scratch_dev" "$cfg"
	fi
	echo "# fstests $fs $cfg: ${#FST_TESTS[@]} tests" >&3
	(cd "$FST" && env FSTYP="$fs" TEST_DEV="$test_dev" TEST_DIR="$FST_MNT/test" \
		SCRATCH_DEV="$scratch_dev" SCRATCH_MNT="$FST_MNT/scratch" \
		RESULT_BASE="$BATS_TEST_TMPDIR/results-$cfg" \
		./check "${FST_TESTS[@]}") >"$out.log" 2>&1 || rc=$?
	sed -n 's/^Failures: //p' "$out.log" | tr ' ' '\n' | sed '/^$/d' >"$out.failed"
	sed -n 's/^Not run: //p' "$out.log" | tr ' ' '\n' | sed '/^$/d' >"$out.notrun"
	grep -Eq '^(Passed all|Failed [0-9]+ of) [0-9]+ tests' "$out.log" ||
		{ tail -n 30 "$out.log"; die "fstests $cfg: check did not finish (exit $rc)"; }
	umount "$FST_MNT/scratch" 2>/dev/null || true
	umount "$FST_MNT/test" 2>/dev/null || true
	if [[ $cfg != plain ]]; then
		uninterpose fsttest "$test_dev"
		uninterpose fstscratch "$scratch_dev"
	fi
}

# result CFG TEST: pass, fail or notrun
result() {
	local out=$BATS_TEST_TMPDIR/$1
	if grep -qx "$2" "$out.failed"; then echo fail
	elif grep -qx "$2" "$out.notrun"; then echo notrun
	else echo pass
	fi
}

# Run FS plain and in each CFG, print the table, fail on a regression.
fst_compare() {
	local fs=$1 cfg t r bad=0 row
	shift
	fst_run "$fs" plain
	for cfg in "$@"; do
		fst_run "$fs" "$cfg"
	done
	echo "# fstests $fs: test plain $*" >&3
	for t in "${FST_TESTS[@]}"; do
		row="$t $(result plain "$t")"
		[[ $(result plain "$t") == notrun ]] && bad=1
		for cfg in "$@"; do
			r=$(result "$cfg" "$t")
			row+=" $r"
			[[ $(result plain "$t") == pass && $r != pass ]] && bad=1
		done
		echo "# $row" >&3
	done
	if ((bad)); then
		for cfg in plain "$@"; do
			echo "== $cfg"
			cat "$BATS_TEST_TMPDIR/$cfg.log"
		done
		die "fstests on $fs: a test that passes plain does not pass interposed, or did not run plain"
	fi
	echo "# fstests $fs: no test passing plain failed interposed" >&3
}

# The plain "attach" (no stack) runs in make torture only (DMI_TORTURE=long):
# the era stack goes through the same redirect, and the CI budget is tight.
@test "fstests on ext4: plain, attach_to era (and attach, in make torture)" {
	if [[ ${DMI_TORTURE:-} == long ]]; then
		fst_compare ext4 attach era
	else
		fst_compare ext4 era
	fi
}

@test "fstests on XFS: plain, attach_to snapshot-origin with a snapshot" {
	fst_compare xfs snapshot
}
