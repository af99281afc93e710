# schema-init: see README.md.  `make` builds the static binary; `make test` is the
# default test run; CI (.ci/run) runs `make test`, `make test-build` and `make test-vm-smoke`.
PY311   ?= /usr/bin/python3.11
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DEBS    := python3.11 python3.11-dev python3.11-venv gcc make patch patchelf zlib1g-dev \
           libexpat1-dev util-linux busybox-static fdisk mtools dosfstools shellcheck tmux \
           device-tree-compiler
# Issue 24's large packages (chromium alone is 290 MB installed): only `make test-see`
# installs them; the tests that use them are marked `see` and skip, saying so, without.
SEEDEBS := chromium prometheus prometheus-node-exporter
VMDEBS  := qemu-system-x86 linux-image-amd64 cpio e2fsprogs
# Cross builds (issue 10, toolchains/README.md): Debian's cross compilers and C libraries
# (gnueabihf only to prove the armv6l checks refuse its output) and qemu-user.
CROSSDEBS := gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabi \
             libc6-dev-armel-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross \
             qemu-user-static
CROSSSTAMP := build/tmp/cross/.deps
BINARY  := build/out/schema-init
SOURCES := $(wildcard schema_init/*.py schema_init/*/*.py native/*) _fastloop.pyx build/build.sh \
           build/entry.py build/stdlib_excludes.py \
           build/patch-nuitka.sh build/frozen.py \
           $(wildcard build/nuitka-patches/*.patch)

DESTDIR ?=
PREFIX  ?= /usr
SBINDIR ?= /sbin
DATADIR ?= $(PREFIX)/share/schema-init

.PHONY: all binary venv test test-fast test-build test-vm test-vm-smoke demo check run bench \
        install clean test-adversarial test-debian test-debian-smoke test-see

all: binary

binary: $(BINARY)

$(STAMP): setup.py _fastloop.pyx requirements-dev.txt requirements-build.txt
	build/ensure-deps.sh $(DEBS)
	test -x $(PY) || $(PY311) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt \
	    -r requirements-build.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation -e .
	touch $@

venv: $(STAMP)

# One static executable (Nuitka + the Cython loop linked in); about a minute.
$(BINARY): $(STAMP) $(SOURCES)
	build/build.sh

# The default test run: unit, process and namespace tiers (the namespace tier boots the
# static binary as PID 1 of a PID namespace, so it is built first).  A few minutes.
# DEBS again (a quick check) for a venv made before a package joined them: shellcheck.
test: $(BINARY) $(CROSSSTAMP)
	build/ensure-deps.sh $(DEBS)
	$(PY) -m pytest -q tests -m "not build and not vm and not cross and not debian and not bench and not image and not see and not debian_servers"

# Pure core only: seconds.
test-fast: $(STAMP)
	build/ensure-deps.sh $(DEBS)
	$(PY) -m pytest -q tests -m "not process and not build and not namespace and not vm and not cross_fast and not cross and not debian and not bench and not image and not see and not debian_servers"

# Issue 24's "see" tier: the boot chart rendered by Debian's chromium (headless, a
# screenshot checked pixel by pixel), schema-metrics' file checked by promtool and
# scraped from Debian's node_exporter.  Installs SEEDEBS first.
test-see: $(STAMP)
	build/ensure-deps.sh $(DEBS) $(SEEDEBS)
	$(PY) -m pytest -q tests -m see

# Build tier: the binary itself, then the whole process tier again against it.
test-build: $(BINARY)
	$(PY) -m pytest -q tests -m build
	SCHEMA_INIT_BIN=$(CURDIR)/$(BINARY) $(PY) -m pytest -q tests -m process

# Issue 9's adversarial suite, long form: the fuzzers at full size (100,000 requests,
# 10,000 files, 10,000 unit files), and issue 22's hostile local user on every channel
# (notify, listen= paths, the journal's sockets, reloads: PID 1's CPU, the loop's longest
# stall, what the victim lost), measurements in bench/REPORT-adversarial.md.
# `make test` runs its short form.  A fuzzer's seed is printed: ADVERSARIAL_SEED=<n>
# replays it.
test-adversarial: $(BINARY)
	ADVERSARIAL_SCALE=full $(PY) -m pytest -q tests/test_adversarial.py tests/test_units_fuzz.py \
	    $(wildcard tests/test_hostile_*.py)

# The main job: build the binary and boot it as PID 1 in a VM, showing the services.
demo: $(BINARY)
	build/ensure-deps.sh $(VMDEBS)
	build/demo.sh

# VM tier (QEMU, TCG): every PID 1 test in a real kernel (several minutes).
test-vm: $(BINARY)
	build/ensure-deps.sh $(VMDEBS)
	$(PY) -m pytest -q tests -m vm

# Issue 11's Debian VM tier: a stock Debian 12 root (debootstrap, cached in build/tmp/debian)
# booted with the host's kernel and initramfs-tools initrd and init=/usr/sbin/schema-init:
# serial login and SSH, reboot/poweroff typed, kill -9 of daemons, a package reinstall,
# single, a root booted ro; e2fsck -fn after every power-off.  About 10 minutes.
test-debian: $(BINARY)
	build/ensure-deps.sh $(VMDEBS) debootstrap openssh-client
	$(PY) -m pytest -q tests -m debian

# Issue 11: the Debian package build/out/schema-init_VERSION_ARCH.deb (distros/debian/README.md);
# lintian-clean (make deb-lint).  deb-aarch64 / deb-armv6l: the boards' packages (arm64, armel).
deb: $(BINARY)
	build/mkdeb.sh $(BINARY)

deb-aarch64: build/out/aarch64/schema-init
	build/mkdeb.sh build/out/aarch64/schema-init arm64

deb-armv6l: build/out/armv6l/schema-init
	build/mkdeb.sh build/out/armv6l/schema-init armel

deb-lint: deb
	build/ensure-deps.sh lintian
	lintian -EvI --pedantic $$(build/mkdeb.sh $(BINARY))

.PHONY: deb deb-aarch64 deb-armv6l deb-lint

# What CI runs of it: the Debian root made (or taken from the cache), one boot to SSH and
# a serial login, poweroff, e2fsck, and Debian's daemons from that root supervised on the
# host (tests/test_debian_daemons.py: rsyslogd socket-activated); about 2 minutes.
test-debian-smoke: $(BINARY)
	build/ensure-deps.sh $(VMDEBS) debootstrap openssh-client
	$(PY) -m pytest -q tests/test_debian.py -k boots_to_ssh
	$(PY) -m pytest -q tests/test_debian_daemons.py

# The part of the VM tier CI runs (boot, shutdown data safety x10): a few minutes.
test-vm-smoke: $(BINARY)
	build/ensure-deps.sh $(VMDEBS)
	$(PY) -m pytest -q tests -m "vm and smoke"

# What the cross_fast tests (tests/test_cross.py) and toolchains/cross_check.sh need:
# CROSSDEBS, and the targets' Python 3.11 headers and static libraries fetched with
# apt-get download into build/tmp/cross/pydev (the host's apt state is not changed).
cross-deps: $(CROSSSTAMP)

$(CROSSSTAMP): toolchains/fetch_pydev.sh $(wildcard toolchains/*.env)
	build/ensure-deps.sh $(CROSSDEBS)
	toolchains/fetch_pydev.sh arm64 armel armhf
	mkdir -p $(@D) && touch $@

# The fast cross check by hand: the Cython loop and the binary's C files compiled for
# aarch64 and armv6l, checked by toolchains/elfcheck.py, a static program run in qemu-user.
cross-check: $(STAMP) $(CROSSSTAMP)
	toolchains/cross_check.sh aarch64
	toolchains/cross_check.sh armv6l

.PHONY: cross-deps cross-check

# Cross builds (issue 10, toolchains/README.md): the same static binary for another
# board, built by build/build.sh inside the target's own Debian root (debootstrap, run
# through qemu-user-static; cached in build/tmp/cross), the C by Debian's cross gcc.
# `make x86_64` is the default native build.
CROSS_TARGETS := aarch64 armv6l
CROSS_SOURCES := $(SOURCES) toolchains/build-target.sh toolchains/mkroot.sh \
                 toolchains/binfmt.sh toolchains/targets.py toolchains/recipe.sh \
                 toolchains/elfcheck.py
x86_64: $(BINARY)
$(CROSS_TARGETS): %: build/out/%/schema-init

build/out/%/schema-init: $(STAMP) $(CROSSSTAMP) $(CROSS_SOURCES) toolchains/%.env
	toolchains/build-target.sh $*

# The cross tier, slow (see README "Cross builds"): both cross binaries built; for each,
# the build tier and the whole process tier run under qemu-user with the board's CPU
# (binfmt_misc, QEMU_CPU); then tests marked cross: the binaries' ELF checks and their
# boots as PID 1 of Debian's arm64 kernel (QEMU virt, cortex-a53) and armel's Raspberry Pi
# kernel (QEMU raspi0), toolchains/fetch_kernel.sh.
test-cross: $(BINARY) $(addprefix build/out/,$(addsuffix /schema-init,$(CROSS_TARGETS)))
	build/ensure-deps.sh $(VMDEBS) qemu-system-arm device-tree-compiler
	toolchains/fetch_kernel.sh arm64 armel
	toolchains/binfmt.sh qemu-aarch64 qemu-arm
	SCHEMA_INIT_BIN=$(CURDIR)/build/out/aarch64/schema-init SCHEMA_INIT_TARGET=aarch64 \
	    QEMU_CPU=cortex-a53 $(PY) -m pytest -q tests -m "build or process"
	SCHEMA_INIT_BIN=$(CURDIR)/build/out/armv6l/schema-init SCHEMA_INIT_TARGET=armv6l \
	    QEMU_CPU=arm1176 $(PY) -m pytest -q tests -m "build or process"
	$(PY) -m pytest -q tests -m cross

# What CI runs of it: both cross binaries built from nothing (their roots included), their
# ELF checks, and one boot each as PID 1 (about 8 minutes on a clean clone).
test-cross-smoke: $(addprefix build/out/,$(addsuffix /schema-init,$(CROSS_TARGETS)))
	build/ensure-deps.sh $(VMDEBS) qemu-system-arm device-tree-compiler
	toolchains/fetch_kernel.sh arm64 armel
	toolchains/binfmt.sh qemu-aarch64 qemu-arm
	$(PY) -m pytest -q tests/test_cross_binary.py tests/test_vm_cross.py -k \
	    "not watchdog and not data_written and not subreaper"

.PHONY: x86_64 $(CROSS_TARGETS) test-cross test-cross-smoke

check: $(STAMP)
	$(VENV)/bin/schema-init --check services/reference

# Supervise services/demo (not as PID 1) and show schema-ctl status.
run: $(STAMP)
	build/run-demo.sh

# Benchmarks (bench/README.md): reports, never asserts.  `make bench` (issue 13): five
# inits (schema-init, systemd, sysvinit, runit, busybox init) booted 3 times each on one
# Debian root, and the supervisor microbenchmarks; bench/REPORT-inits.md,
# bench/results/inits-*.{json,md,png}, README's table.  Under 30 minutes.
BENCHSTAMP := $(VENV)/.bench
$(BENCHSTAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	touch $@

# `make bench BOARD=aarch64`: the same on an emulated aarch64 board (QEMU virt, cortex-a53,
# TCG) with an arm64 root (mkdebian.sh ARCH=arm64, Debian's linux-image-arm64 booting it)
# and the aarch64 static binary; bench/REPORT-inits-aarch64.md, bench/results/
# inits-aarch64-*, README's inits-table-aarch64.  BOARD counts here only when given on the
# command line (its default, rpi-zero-w, is the image targets'); BENCH_BOARD also names it.
BENCH_BOARD ?= $(if $(filter command line,$(origin BOARD)),$(BOARD),x86_64)
BENCH_BIN_x86_64   := $(BINARY)
BENCH_BIN_aarch64  := build/out/aarch64/schema-init
BENCH_DEBS_aarch64 := qemu-system-arm qemu-user-static
BENCH_SMOKE_x86_64  := tests/test_bench.py
BENCH_SMOKE_aarch64 := tests/test_bench_aarch64.py
# `make bench BOARD=rpi-zero-w`: the image users flash (schema-init, its own root and
# services) against systemd and sysvinit on the same Debian armel packages and kernel
# (build/mkpiroot.sh's card, cached), in QEMU raspi0 (bench/pi_inits_bench.py, about 25
# minutes); bench/REPORT-inits-rpi-zero-w.md, README's inits-table-rpi-zero-w.
BENCH_BIN_rpi-zero-w   := image
BENCH_DEBS_rpi-zero-w   = $(IMAGEDEBS)
BENCH_SMOKE_rpi-zero-w := tests/test_bench_pi.py
BENCH_BIN := $(BENCH_BIN_$(BENCH_BOARD))
# the image's board has its own benchmark program; the others give it their binary
BENCH_ENV = $(if $(filter rpi-zero-w,$(BENCH_BOARD)),,SCHEMA_INIT_BIN=$(CURDIR)/$(BENCH_BIN))
BENCH_RUN = $(if $(filter rpi-zero-w,$(BENCH_BOARD)),bench/pi_inits_bench.py,\
            bench/inits_bench.py $(if $(filter-out x86_64,$(BENCH_BOARD)),--board $(BENCH_BOARD)))

bench: $(BENCH_BIN) $(BENCHSTAMP)
	$(if $(BENCH_BIN),,$(error make bench: no board $(BENCH_BOARD) (x86_64, aarch64, rpi-zero-w)))
	build/ensure-deps.sh $(VMDEBS) $(BENCH_DEBS_$(BENCH_BOARD)) debootstrap openssh-client
	$(BENCH_ENV) $(PY) $(BENCH_RUN)

# What CI runs of it: schema-init and systemd booted once each, short idle (~4 minutes).
# BOARD=aarch64: the same on the aarch64 board (not in CI; see bench/README.md for its time).
# BOARD=rpi-zero-w: the image and the systemd card booted once each (their first boots).
bench-smoke: $(BENCH_BIN) $(BENCHSTAMP)
	$(if $(BENCH_BIN),,$(error make bench-smoke: no board $(BENCH_BOARD) (x86_64, aarch64, rpi-zero-w)))
	build/ensure-deps.sh $(VMDEBS) $(BENCH_DEBS_$(BENCH_BOARD)) debootstrap openssh-client
	$(BENCH_ENV) $(PY) -m pytest -q $(BENCH_SMOKE_$(BENCH_BOARD))

# The older reports too: the static binary, PID 1 in the busybox VM, start-up.
bench-all: bench
	$(PY) bench/binary_bench.py
	$(PY) bench/vm_bench.py
	$(PY) bench/startup_bench.py
	$(PY) bench/units_coverage.py --download

.PHONY: bench-smoke bench-all

# INSTALL_BIN=build/out/armv6l/schema-init installs (and if needed builds) a cross binary.
INSTALL_BIN ?= $(BINARY)
install: $(INSTALL_BIN)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(DATADIR)/services
	install -m 0755 $(INSTALL_BIN) $(DESTDIR)$(SBINDIR)/schema-init
	ln -sf schema-init $(DESTDIR)$(SBINDIR)/schema-ctl
	ln -sf schema-init $(DESTDIR)$(SBINDIR)/schema-subreaper
	ln -sf schema-init $(DESTDIR)$(SBINDIR)/schema-journald
	ln -sf schema-init $(DESTDIR)$(SBINDIR)/schema-firstboot
	ln -sf schema-init $(DESTDIR)$(SBINDIR)/schema-metrics
	for d in /usr/bin /bin /usr/sbin /sbin; do [ -e $(DESTDIR)$$d/journalctl ] && exit 0; done; \
	    ln -sf schema-init $(DESTDIR)$(SBINDIR)/journalctl
	cp -P services/reference/* $(DESTDIR)$(DATADIR)/services/

clean:
	rm -rf $(VENV) build/tmp build/out *.egg-info schema_init/*/*.so

# Issue 12: one flashable SD card image for a board (distros/raspberry-pi-zero-w/README.md):
# build/out/schema-init-BOARD.img, made without loop devices or mounts, reproducible.
# test-image: the image's partition table and FAT, boots in QEMU raspi0 (first-boot file,
# identity, data partition grown and re-made), power-loss torture (TORTURE_BOOTS, 50).
# test-image-smoke: what CI runs of it.
BOARD      ?= rpi-zero-w
IMAGEDEBS  := debootstrap qemu-user-static mtools dosfstools squashfs-tools erofs-utils \
              e2fsprogs fdisk cpio kmod qemu-system-arm device-tree-compiler
IMAGE      := build/out/schema-init-$(BOARD).img
image: build/out/armv6l/schema-init
	build/ensure-deps.sh $(IMAGEDEBS)
	build/mkimage.sh $(BOARD)

test-image: image
	$(PY) -m pytest -q tests -m image

test-image-smoke: image
	$(PY) -m pytest -q tests -m "image and smoke"

.PHONY: image test-image test-image-smoke

# Issue 21's unit corpus, RUN: the units, generators and init scripts of the Debian 12
# server packages of bench/corpus/packages.txt (apt-get download, indexed), a root with
# all of them installed (debootstrap + apt-get, nothing started; cached outside the
# clone in /var/cache/schema-init-build/corpus, CORPUS_CACHE), booted under this
# checkout's static binary in namespaces, each unit classified works / degraded /
# broken / missing / container / replaced: bench/REPORT-units.md and
# bench/results/units-corpus.json.  About 10 minutes with the roots cached (making
# them: 5 to 15 more).
bench-units: $(BINARY)
	build/ensure-deps.sh debootstrap python3 util-linux iproute2
	bench/corpus/fetch.sh
	flock /tmp/schema-heavy.lock bench/corpus/mkroot.sh main alt
	flock /tmp/schema-heavy.lock python3 bench/units_corpus.py --no-build --source binary

.PHONY: bench-units

# Issue 23: A/B updates of the Pi image (README "A Pi Zero W fleet image",
# distros/raspberry-pi-zero-w/README.md).  bundle: build/out/schema-init-BOARD-VERSION.raucb,
# a RAUC (1.8, Debian's) verity bundle of the image made by `make image`, signed with
# UPDATE_KEY/UPDATE_CERT (else build/keys' development pair).  test-update: the installer
# and the trial on the host (tests/test_update*.py), then the card in QEMU raspi0 with the
# firmware played (tests/test_update_vm.py: commit, rollback of a crashing and of a hanging
# slot, power cuts; UPDATE_VM_CUTS, 30).  test-update-smoke: what CI would run of it.
UPDATEDEBS := rauc squashfs-tools mtools dosfstools openssl faketime
bundle: image
	build/ensure-deps.sh $(UPDATEDEBS)
	build/mkbundle.sh $(BOARD)

test-update: bundle
	$(PY) -m pytest -q tests/test_update_trial.py tests/test_update.py tests/test_update_vm.py

test-update-smoke: bundle
	$(PY) -m pytest -q tests/test_update_trial.py tests/test_update.py tests/test_update_vm.py \
	    -m "not update_long"

.PHONY: bundle test-update test-update-smoke

# Issue 21's server tier (tests/test_debian_servers.py): a Debian 12 root with postgresql,
# mariadb-server, redis-server, nginx, postfix, tor and nftables (build/mkdebian.sh
# FLAVOUR=servers, cached in build/tmp/debian/root-servers) booted by schema-init: each
# daemon answers, nft's table, apt-get install of memcached while running, systemctl
# restart/reload/stop, each daemon's own stop at poweroff; then
# bench/debian_servers_bench.py boots it and the same root with systemd (FLAVOUR=
# servers-systemd): boot to every port, bench/REPORT-debian-servers.md (even when a test
# failed; the target fails then).  test-debian-servers-smoke: one boot, the ports and nft,
# every daemon answering within 150 s of QEMU's start (systemd: 66 s on this machine).
test-debian-servers: $(BINARY)
	build/ensure-deps.sh $(VMDEBS) debootstrap openssh-client
	$(PY) -m pytest -q tests/test_debian_servers.py; status=$$?; \
	    $(PY) bench/debian_servers_bench.py && exit $$status

test-debian-servers-smoke: $(BINARY)
	build/ensure-deps.sh $(VMDEBS) debootstrap openssh-client
	DEBIAN_SERVERS_BOOT_BOUND=150 $(PY) -m pytest -q tests/test_debian_servers.py -k "after_boot or nft"

.PHONY: test-debian-servers test-debian-servers-smoke
