# dm-interpose: top-level entry points. Every kernel test runs in a QEMU guest
# (scripts/vm-run) booting the pinned Debian kernel (kprobe hook) or, for the
# native lane, Debian's newest kernel source (7.3) with our patch series
# (native hook, the in-tree target).
#
#   make setup     install the pinned kernel, headers and tools (Debian packages)
#   make module    build dm-target/dm-interpose.ko against the pinned headers
#   make check     lint, build, run every bats suite in a guest: "N passed, N failed"
#                  (with the torture suites tests/8*.bats and the table of
#                  their figures)
#   make torture   the torture suites' long variant (many more cycles), both kernels
#   make lvm       Debian's lvm2 source + lvm-patches/series, built into
#                  build/lvm/bin (dmsetup, lvm): the tests use these
#   make lvm-check lvm2's own tests (dmsetup-*, dmstats-*, snapshot-*,
#                  activate-minor) in guests, patched build against unpatched:
#                  fails when a test passing unpatched does not pass patched
#   make kernel    apply kernel-patches/series to the pinned source, merge
#                  Kconfig.frag, build the kernel and the module against it
#   make check-series  each patch of the series builds on its own
#   make check-native  the same suites in a guest booting that kernel (native
#                  hook, lockdep/KASAN/kmemleak on; any report fails the run)
#   make check-kernels  the other kernels of the matrix (scripts/pins.sh:
#                  Debian's 6.1 and 7.3): module, dkms build, kernel-facing
#                  suites in guests booting each
#   make check-boot  boots with systemd as PID 1 over persistent disks:
#                  fstab, a configured era stack, clean and forced reboots,
#                  LVM autoactivation of an interposed LV with a late PV,
#                  a snapshot of the live / of a disk root
#   make module KVER=<release>  the module for one kernel of the matrix
#   make demo      a mounted ext4 under load gets an era + snapshot stack live
#   make demo-backup  an incremental backup from era (Documentation/backup.rst)
#   make kernel-bench  the same kernel without the debug set, for make bench
#   make bench     fio side by side: raw, linear, attach, attach_to, other device;
#                  attach/detach latency (build/bench/results.tsv, ratios.png);
#                  on the stock kernel and, once make kernel-bench has built
#                  it, on the patched one (configs *_native)
#   make bench-profile  instructions per I/O by kernel symbol, against raw
#   make install   the module, udev rules and helpers, activation tool, man
#                  pages (DESTDIR=... for a staging tree); make uninstall
#   make check-install  install/uninstall into a scratch DESTDIR, dkms build
#   make lint      checkpatch --strict on the module, shellcheck on the scripts
#   make clean

VM_OPTS    ?= --mem 3072 --timeout 3600
SUITES     ?=

.PHONY: all setup module fstests lvm lvm-check check check-kernels check-boot torture kernel kernel-bench check-series check-native demo demo-backup bench bench-profile lint clean install uninstall check-install

all: module

setup:
	scripts/setup

# make module KVER=<release>: for another kernel of the matrix (KERNELS in
# scripts/pins.sh), fetched by scripts/get-kernel, built into build/kernels/.
# build/nokprobes/: the module as a kernel without kprobes gets it (hook
# "none"), for tests/10-table.bats.
KVER ?=
HELPERS = $(patsubst %/Kbuild,%,$(wildcard tests/helpers/*/Kbuild))
module: setup
	$(if $(KVER),scripts/get-kernel $(KVER))
	scripts/build-module $(if $(KVER),--kver $(KVER))
	set -e; for h in $(HELPERS); do scripts/build-module $(if $(KVER),--kver $(KVER)) --dir $$h; done
	$(if $(KVER),,scripts/build-module --out build/nokprobes CONFIG_KPROBES=)

# Each lane spreads its suites over GUESTS guests running side by side (a
# single-threaded TCG guest keeps one host core busy).
GUESTS     ?= 2

# tests/86-fault-inject.bats needs fault injection, which only the patched
# kernel's debug set has (Kconfig.frag): it runs on the native lane only.
# The torture suites (tests/8*.bats) print their figures; the table of them
# comes at the end (scripts/torture-report).
STOCK_SKIP ?= tests/86-fault-inject.bats
STOCK_SUITES = $(or $(SUITES),$(filter-out $(STOCK_SKIP),$(sort $(wildcard tests/*.bats))))
check: lint module check-install lvm fstests
	VM_RUN_OPTS="$(VM_OPTS)" scripts/check-lane --kernel stock --guests $(GUESTS) $(STOCK_SUITES)
	-scripts/torture-report build/check-stock/*.out

# The torture suites alone, their long variant (DMI_TORTURE=long: many more
# cycles and iterations), on the stock kernel and, once make kernel has built
# it, on the patched one; then the table of their figures.
TORTURE_SUITES = $(sort $(wildcard tests/8*.bats))
TORTURE_OPTS = --mem 3072 --timeout 14400 --env DMI_TORTURE=long --env BATS_TEST_TIMEOUT=7200
torture: lint module lvm fstests
	VM_RUN_OPTS="$(TORTURE_OPTS)" scripts/check-lane --kernel stock \
		--guests $(GUESTS) $(filter-out $(STOCK_SKIP),$(TORTURE_SUITES))
	if [ -f build/kernel/module/dm-interpose.ko ]; then \
		VM_RUN_OPTS="$(TORTURE_OPTS)" scripts/check-lane --kernel native \
			--guests $(GUESTS) $(TORTURE_SUITES); fi
	scripts/torture-report $(wildcard build/check-stock/*.out build/check-native/*.out)

lvm: setup
	scripts/build-lvm

# fstests, for tests/87-fstests.bats (from ../shared/fstests; not in Debian).
fstests: setup
	scripts/build-fstests

lvm-check: setup
	scripts/lvm-check $(LVM_TESTS)

kernel: setup
	scripts/build-kernel

# Each patch of kernel-patches/series builds on its own (W=1, no warning in
# the files it touches): scripts/check-series.
check-series: setup
	scripts/check-series

kernel-bench: setup
	scripts/build-kernel --flavour bench

# The debug kernel runs a few times slower under TCG: the attach/detach
# cycles of tests/40-load.bats under fio are NATIVE_CYCLES per case there
# (the stock lane runs 10).
# The failure-point tests of tests/60-dmsetup.bats, when run there, fail
# every NATIVE_FAIL_STRIDE-th DM ioctl; the stock lane fails every one.
# What the native lane leaves out (NATIVE_SKIP; the CI budget), all of it
# kernel-independent or run by make torture:
# - tests/60-dmsetup.bats: its failure points exercise libdevmapper's undo,
#   the same on either kernel;
# - tests/50-udev.bats and tests/70-lvconvert.bats: the udev rules and LVM's
#   commands are user space, the same on either hook; the kernel side of
#   their stacks (snapshots, era, LVM-style layering under a redirect) is in
#   20-attach and 30-stacks, which both lanes run;
# - tests/40-load.bats (12 minutes there): its attach/detach cycles under
#   fio run on the stock lane and on every kernel of make check-kernels;
#   on this kernel make torture runs their long form (80-torture-load);
# - tests/26-coexist.bats: the native hook uses neither ftrace nor kprobes,
#   and with the series applied submit_bio_noacct() is a two-line wrapper
#   the compiler inlines into submit_bio(), so another product's hook on it,
#   like the stand-in, never sees a filesystem's own bios: nothing to test;
# - tests/27-hardening.bats: the open mode is the same code on every hook,
#   tested on the stock kernels; tests/28-nokprobes.bats: a stock-kernel
#   build;
# - the torture suites (tests/8*.bats) run on the stock lane; the fault
#   injection only the patched kernel has (86-fault-inject, 12 minutes there)
#   and the others on that kernel run in make torture.
# make check-native NATIVE_SKIP= runs them all; SUITES given by hand run as
# given. CI does not run this lane
# (.ci/run says why).
NATIVE_CYCLES ?= 5
NATIVE_FAIL_STRIDE ?= 4
# A test's time limit there (tests/run's BATS_TEST_TIMEOUT, 600 s on the
# stock lane): tests/31-direct.bats' 20 race cycles take about 620 s on
# the debug kernel.
NATIVE_TEST_TIMEOUT ?= 1200
NATIVE_SKIP ?= tests/40-load.bats tests/50-udev.bats tests/60-dmsetup.bats \
	tests/70-lvconvert.bats tests/26-coexist.bats tests/27-hardening.bats \
	tests/28-nokprobes.bats $(wildcard tests/8*.bats)
NATIVE_SUITES = $(or $(SUITES),$(filter-out $(NATIVE_SKIP),$(sort $(wildcard tests/*.bats))))
check-native: lint kernel lvm
	VM_RUN_OPTS="$(VM_OPTS) --env DMI_CYCLES=$(NATIVE_CYCLES) --env DMI_FAIL_STRIDE=$(NATIVE_FAIL_STRIDE) \
		--env BATS_TEST_TIMEOUT=$(NATIVE_TEST_TIMEOUT)" \
		scripts/check-lane --kernel native --guests $(GUESTS) $(NATIVE_SUITES)
	-scripts/torture-report build/check-native/*.out

# The kernel matrix: every pinned kernel but the primary one (KERNELS in
# scripts/pins.sh), its dkms build and the kernel-facing suites in guests
# booting it (scripts/check-kernels).
check-kernels: lint lvm
	VM_RUN_OPTS="$(VM_OPTS)" scripts/check-kernels

# Boots with systemd as PID 1 (tests/boot/*.bats, on the host; each test
# boots its guest several times over the same disks).
check-boot: lvm
	scripts/check-boot

install: module
	scripts/install --destdir "$(DESTDIR)" module udev tools man dkms

uninstall:
	scripts/install --uninstall --destdir "$(DESTDIR)" module udev tools man dkms

check-install: module
	scripts/check-install

demo: module
	scripts/vm-run --disk 1G --timeout 1200 -- scripts/demo

# The incremental backup of Documentation/backup.rst, with progress.
demo-backup: module
	scripts/vm-run --disk 1G --disk 1G --timeout 1200 -- scripts/demo-backup

bench: module
	scripts/bench

# Where an I/O's instructions go, per kernel symbol, against raw (perf in
# the guest on the instruction clock): BENCH_PROFILE="idle_lv attach_to".
bench-profile: module
	scripts/bench-profile $(BENCH_PROFILE)

lint: setup
	scripts/lint

clean:
	-scripts/build-module clean
	-set -e; for h in $(HELPERS); do scripts/build-module --dir $$h clean; done
	rm -rf build
