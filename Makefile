# dm-interpose: top-level entry points. Every kernel test runs in a QEMU guest
# booting the pinned Debian kernel (scripts/vm-run).
#
#   make setup     install the pinned kernel, headers and tools (Debian packages)
#   make module    build dm-target/dm-interpose.ko against the pinned headers
#   make check     lint, build, run every bats suite in a guest: "N passed, N failed"
#   make demo      a mounted ext4 under load gets an era + snapshot stack live
#   make bench     fio side by side: raw, linear, attach, attach_to, other device;
#                  attach/detach latency (build/bench/results.tsv, ratios.png)
#   make lint      checkpatch --strict on the module, shellcheck on the scripts
#   make clean

VM_DISKS   := --disk 1G --disk 1G
VM_OPTS    ?= --mem 3072 --timeout 3600
SUITES     ?=

.PHONY: all setup module check demo bench lint clean

all: module

setup:
	scripts/setup

module: setup
	scripts/build-module

check: lint module
	scripts/vm-run $(VM_DISKS) $(VM_OPTS) -- tests/run $(SUITES)

demo: module
	scripts/vm-run --disk 1G --timeout 1200 -- scripts/demo

bench: module
	scripts/bench

lint: setup
	scripts/lint

clean:
	-scripts/build-module clean
	rm -rf build
