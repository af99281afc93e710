################################################################################
#
# schema-init
#
################################################################################

SCHEMA_INIT_VERSION = local
# The checkout this tree lives in (distros/buildroot/ is two levels down).
SCHEMA_INIT_SITE = $(BR2_EXTERNAL_SCHEMA_INIT_PATH)/../..
SCHEMA_INIT_SITE_METHOD = local
# Build roots, caches, outputs and the venv stay out of the copy Buildroot makes.
SCHEMA_INIT_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude build/tmp --exclude build/out --exclude .venv --exclude .git
SCHEMA_INIT_LICENSE = Proprietary
SCHEMA_INIT_INSTALL_STAGING = NO

# Buildroot's BR2_ARCH -> the checkout's target (toolchains/targets.py knows the same
# map: arm means the ARM1176 of the Pi Zero, armv6l).
SCHEMA_INIT_TARGET = $(strip \
	$(if $(filter aarch64,$(BR2_ARCH)),aarch64, \
	$(if $(filter x86_64,$(BR2_ARCH)),x86_64, \
	$(if $(filter arm,$(BR2_ARCH)),armv6l))))
SCHEMA_INIT_OUT = $(if $(filter x86_64,$(SCHEMA_INIT_TARGET)),build/out,build/out/$(SCHEMA_INIT_TARGET))
SCHEMA_INIT_PREBUILT = $(call qstrip,$(BR2_PACKAGE_SCHEMA_INIT_PREBUILT))
SCHEMA_INIT_SERVICES = $(call qstrip,$(BR2_PACKAGE_SCHEMA_INIT_SERVICES))

ifeq ($(SCHEMA_INIT_TARGET),)
$(error schema-init: no recipe for BR2_ARCH=$(BR2_ARCH) (aarch64, x86_64 or arm for the ARM1176))
endif

ifeq ($(SCHEMA_INIT_PREBUILT),)
SCHEMA_INIT_BINARY = $(@D)/$(SCHEMA_INIT_OUT)/schema-init
# The checkout's own recipe, told about Buildroot's toolchain and directories
# (toolchains/targets.py honours TARGET_CROSS, STAGING_DIR, HOST_DIR and BR2_ARCH).
define SCHEMA_INIT_BUILD_CMDS
	$(TARGET_MAKE_ENV) TARGET_CROSS="$(TARGET_CROSS)" STAGING_DIR="$(STAGING_DIR)" \
		HOST_DIR="$(HOST_DIR)" BR2_ARCH="$(BR2_ARCH)" \
		$(MAKE) -C $(@D) $(SCHEMA_INIT_TARGET)
endef
else
SCHEMA_INIT_BINARY = $(SCHEMA_INIT_PREBUILT)
endif

SCHEMA_INIT_NAMES = schema-ctl schema-subreaper schema-powerkey reboot poweroff halt \
	shutdown telinit runlevel

define SCHEMA_INIT_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(SCHEMA_INIT_BINARY) $(TARGET_DIR)/sbin/schema-init
	for name in $(SCHEMA_INIT_NAMES); do \
		ln -sf schema-init $(TARGET_DIR)/sbin/$$name || exit 1; \
	done
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/etc/schema-init/services
	cp -P $(SCHEMA_INIT_SERVICES)/* $(TARGET_DIR)/etc/schema-init/services/
	$(if $(BR2_PACKAGE_SCHEMA_INIT_AS_INIT),ln -sf schema-init $(TARGET_DIR)/sbin/init)
endef

$(eval $(generic-package))
