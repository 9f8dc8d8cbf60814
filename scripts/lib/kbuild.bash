# shellcheck shell=bash
# kbuild.bash - what scripts/build-kernel and scripts/check-series share:
# the configuration (allnoconfig + a fragment), the compiler through ccache,
# and the rule that the series' own files build without a W=1 warning.
# Sourced after scripts/pins.sh.

# kbuild_configure SRC OBJ FRAG LOG [--all-options]: allnoconfig + FRAG
# into OBJ/.config, the output in LOG. With --all-options, fail when an
# option of FRAG did not make it into the configuration (a patch of the
# series may add an option only a later one depends on: check-series
# applies them one at a time).
kbuild_configure() {
	local src=$1 obj=$2 frag log=$4 all=${5:-}
	frag=$(realpath "$3") obj=$(realpath -m "$obj")
	mkdir -p "$obj"
	if ! (cd "$src" && KCONFIG_CONFIG="$obj/.config" scripts/kconfig/merge_config.sh -n -O "$obj" \
		"$frag") >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		echo "kbuild: configuration from $frag failed; log: $log" >&2
		return 1
	fi
	if [[ $all == --all-options ]] && grep -q 'not in final .config' "$log"; then
		grep -A2 'Value requested' "$log" >&2
		echo "kbuild: options of $frag did not make it into the configuration (above)" >&2
		return 1
	fi
}

# kbuild_ccache: KBUILD_CC, the compiler for make CC=: "ccache gcc" when
# ccache is installed (make setup installs it), else gcc. ccache keeps the
# objects between builds, also of other clones of the tree: CCACHE_BASEDIR
# makes the paths in the hashed command lines relative. The cache is
# DMI_CCACHE_DIR, else /var/cache/dm-interpose/ccache, else build/ccache
# when that is not writable.
# shellcheck disable=SC2034 # KBUILD_CC is for the scripts that source this
kbuild_ccache() {
	KBUILD_CC=gcc
	command -v ccache >/dev/null || return 0
	export CCACHE_DIR=${DMI_CCACHE_DIR:-/var/cache/dm-interpose/ccache}
	if ! mkdir -p "$CCACHE_DIR" 2>/dev/null || [[ ! -w $CCACHE_DIR ]]; then
		export CCACHE_DIR=$BUILD/ccache
	fi
	export CCACHE_BASEDIR=$TOP CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-4G}
	KBUILD_CC="ccache gcc"
}

# kbuild_our_warnings LOG: print the W=1 warnings of make's LOG in the files
# the series adds or changes (the rest of the kernel has warnings of its
# own); succeeds when there is any.
kbuild_our_warnings() {
	grep -E '^[^ ]*(block/(bdev|blk-core|blk-mq|blk-interposer)\.c|block/blk\.h|blk-interposer\.h|blk_types\.h|dm-table\.c|dm-interpose[a-z-]*\.[ch]):[0-9]+:[0-9]+: warning' "$1"
}
