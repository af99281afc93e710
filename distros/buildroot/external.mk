include $(sort $(wildcard $(BR2_EXTERNAL_SCHEMA_INIT_PATH)/package/*/*.mk))
