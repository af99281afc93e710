################################################################################
#
# schema-init
#
################################################################################

# The source is the checkout this tree lives in (distros/buildroot is two levels
# down): SITE_METHOD local, so Buildroot rsyncs it to $(@D), downloads nothing, checks
# no hash (see schema-init.hash) and applies no patches.
SCHEMA_INIT_SRC := $(BR2_EXTERNAL_SCHEMA_INIT_PATH)/../..
SCHEMA_INIT_VERSION := $(shell sed -n 's/^ *version="\([^"]*\)",.*/\1/p' $(SCHEMA_INIT_SRC)/setup.py)
SCHEMA_INIT_SITE = $(SCHEMA_INIT_SRC)
SCHEMA_INIT_SITE_METHOD = local
# The checkout's caches (Debian build roots, outputs, the venv) stay out of the copy;
# Buildroot already leaves out .git.
SCHEMA_INIT_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /build/tmp --exclude /build/out --exclude /.venv
# The binary links in CPython, the Nuitka runtime, glibc, zlib and expat statically
# (distros/debian/package/copyright); schema-init's own license is not chosen yet.
SCHEMA_INIT_LICENSE = not chosen yet (schema-init), PSF-2.0 (CPython), \
	Apache-2.0 (Nuitka runtime), LGPL-2.1+ (glibc), Zlib, MIT (expat)
# legal-info would archive the whole checkout for a local package (its rsync there
# skips only VCS directories, not the exclusions above: build roots, the venv), and
# no license allows redistribution yet.
SCHEMA_INIT_REDISTRIBUTE = NO

SCHEMA_INIT_PREBUILT = $(call qstrip,$(BR2_PACKAGE_SCHEMA_INIT_PREBUILT))
SCHEMA_INIT_SERVICES = $(call qstrip,$(BR2_PACKAGE_SCHEMA_INIT_SERVICES))
SCHEMA_INIT_BR2_ARCH = $(call qstrip,$(BR2_ARCH))

# Buildroot reads every package's .mk, enabled or not: ask only when enabled.
ifeq ($(BR2_PACKAGE_SCHEMA_INIT),y)
# BR2_ARCH -> the checkout's target (arm is the Pi Zero's armv6l), and the target's
# ELF machine and class: toolchains/targets.py is the one place that knows them.  Its
# --shell output is recipe lines, NAME="value" (these three values are one word each).
SCHEMA_INIT_RECIPE := $(shell env -i PATH="$$PATH" BR2_ARCH="$(SCHEMA_INIT_BR2_ARCH)" \
	python3 $(SCHEMA_INIT_SRC)/toolchains/targets.py --shell 2>&1)
SCHEMA_INIT_TARGET := $(patsubst TARGET="%",%,$(filter TARGET="%",$(SCHEMA_INIT_RECIPE)))
SCHEMA_INIT_ELF_MACHINE := $(patsubst ELF_MACHINE="%",%,$(filter ELF_MACHINE="%",$(SCHEMA_INIT_RECIPE)))
SCHEMA_INIT_ELF_CLASS := $(patsubst ELF_CLASS="%",%,$(filter ELF_CLASS="%",$(SCHEMA_INIT_RECIPE)))
ifeq ($(SCHEMA_INIT_TARGET),)
$(error schema-init: no target for BR2_ARCH=$(SCHEMA_INIT_BR2_ARCH): $(SCHEMA_INIT_RECIPE))
endif
endif

# e_machine of each recipe's ELF_MACHINE (ELF gABI numbers), e_ident[EI_CLASS] of 32/64.
SCHEMA_INIT_EM_EM_X86_64 = 62
SCHEMA_INIT_EM_EM_AARCH64 = 183
SCHEMA_INIT_EM_EM_ARM = 40
SCHEMA_INIT_EM = $(SCHEMA_INIT_EM_$(SCHEMA_INIT_ELF_MACHINE))
SCHEMA_INIT_EI_CLASS = $(if $(filter 64,$(SCHEMA_INIT_ELF_CLASS)),2,1)

ifeq ($(SCHEMA_INIT_PREBUILT),)
# The checkout's own recipe in the copy, told about Buildroot's toolchain and
# directories (toolchains/targets.py honours TARGET_CROSS, STAGING_DIR, HOST_DIR and
# BR2_ARCH). -j1: its first steps install Debian packages, which must not run twice at
# once. make x86_64 leaves build/out/schema-init, the others build/out/TARGET/.
SCHEMA_INIT_BINARY = $(@D)/build/out/$(if $(filter-out x86_64,$(SCHEMA_INIT_TARGET)),$(SCHEMA_INIT_TARGET)/)schema-init
define SCHEMA_INIT_BUILD_CMDS
	$(TARGET_MAKE_ENV) TARGET_CROSS="$(TARGET_CROSS)" STAGING_DIR="$(STAGING_DIR)" \
		HOST_DIR="$(HOST_DIR)" BR2_ARCH="$(SCHEMA_INIT_BR2_ARCH)" \
		$(MAKE1) -C $(@D) $(SCHEMA_INIT_TARGET)
endef
else
SCHEMA_INIT_BINARY = $(SCHEMA_INIT_PREBUILT)
endif

# A binary for another board would leave the image unbootable: check its ELF header.
define SCHEMA_INIT_CHECK_BINARY
	@f="$(SCHEMA_INIT_BINARY)"; \
	test -f "$$f" || { echo "schema-init: no binary at $$f" >&2; exit 1; }; \
	magic=$$(od -An -tx1 -N4 "$$f" | tr -d ' \n'); \
	class=$$(od -An -tu1 -j4 -N1 "$$f" | tr -d ' \n'); \
	machine=$$(od -An -tu1 -j18 -N1 "$$f" | tr -d ' \n'); \
	if [ "$$magic" != 7f454c46 ] || [ "$$class" != $(SCHEMA_INIT_EI_CLASS) ] || \
		[ "$$machine" != $(SCHEMA_INIT_EM) ]; then \
		echo "schema-init: $$f is not a $(SCHEMA_INIT_TARGET) binary ($(SCHEMA_INIT_ELF_MACHINE)," \
			"ELF$(SCHEMA_INIT_ELF_CLASS)): magic $$magic, class $$class, e_machine $$machine" >&2; \
		exit 1; \
	fi
endef

SCHEMA_INIT_LINKS = schema-ctl schema-subreaper schema-powerkey
# As the init, the usual names too: busybox's reboot signals PID 1 as busybox init
# expects (SIGTERM), which schema-init takes as power off. busybox installs its links
# with install-noclobber, so these win in either order.
ifeq ($(BR2_PACKAGE_SCHEMA_INIT_AS_INIT),y)
SCHEMA_INIT_LINKS += init reboot poweroff halt shutdown telinit runlevel
endif

# Services from Buildroot's System configuration, as busybox's inittab gets them.
ifeq ($(BR2_TARGET_GENERIC_GETTY),y)
define SCHEMA_INIT_GETTY_SERVICE
	{ echo '# Generated from BR2_TARGET_GENERIC_GETTY_* (System configuration).'; \
		echo 'exec=/sbin/getty'; \
		for a in -L $(SYSTEM_GETTY_OPTIONS) $(SYSTEM_GETTY_PORT) \
			$(SYSTEM_GETTY_BAUDRATE) $(SYSTEM_GETTY_TERM); do echo "args=$$a"; done; \
		echo 'session=1'; echo 'stable_secs=2'; \
	} > $(TARGET_DIR)/etc/schema-init/services/getty.svc
endef
endif
ifeq ($(BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW),y)
define SCHEMA_INIT_REMOUNT_SERVICE
	printf '%s\n' '# Generated from BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW.' \
		'exec=/bin/mount' 'args=-o' 'args=remount,rw' 'args=/' 'oneshot=1' \
		> $(TARGET_DIR)/etc/schema-init/services/remount-root.svc
endef
endif
ifeq ($(BR2_PACKAGE_SCHEMA_INIT_REFERENCE_SERVICES),y)
define SCHEMA_INIT_INSTALL_REFERENCE_SERVICES
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/usr/share/schema-init/services
	cp -P $(@D)/services/reference/* $(TARGET_DIR)/usr/share/schema-init/services/
endef
endif

define SCHEMA_INIT_INSTALL_TARGET_CMDS
	$(SCHEMA_INIT_CHECK_BINARY)
	$(INSTALL) -D -m 0755 $(SCHEMA_INIT_BINARY) $(TARGET_DIR)/sbin/schema-init
	for name in $(SCHEMA_INIT_LINKS); do \
		ln -sf schema-init $(TARGET_DIR)/sbin/$$name || exit 1; \
	done
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/etc/schema-init/services
	$(SCHEMA_INIT_GETTY_SERVICE)
	$(SCHEMA_INIT_REMOUNT_SERVICE)
	cp -P $(SCHEMA_INIT_SERVICES)/* $(TARGET_DIR)/etc/schema-init/services/
	$(SCHEMA_INIT_INSTALL_REFERENCE_SERVICES)
endef

$(eval $(generic-package))
