/* The configuration the host test builds the port with: a production-like
 * build (NVS encryption, certificate bundle) with DEBUG logs compiled in. */
#ifndef SDKCONFIG_MOCK_H
#define SDKCONFIG_MOCK_H
#define CONFIG_IDF_TARGET "esp32c3"
#define CONFIG_IDF_TARGET_ESP32C3 1
#define CONFIG_NVS_ENCRYPTION 1
#define CONFIG_MBEDTLS_CERTIFICATE_BUNDLE 1
#define CONFIG_LOG_MAXIMUM_LEVEL 5
#define CONFIG_LOG_VERSION 1
#define CONFIG_LOG_DYNAMIC_LEVEL_CONTROL 1
#endif
