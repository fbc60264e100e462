/*
 * claim_port_idf.h - claim_port_t for ESP-IDF (v5.3+ and v6).
 *
 *   HTTP   esp_http_client, one phase at a time (open, write, headers, body),
 *          each given what is left of the attempt; no redirects; private CA
 *          (PEM) or ESP-IDF's certificate bundle for https://
 *   MQTT   one short-lived esp-mqtt client per attempt (auto-reconnect off),
 *          waits for MQTT_EVENT_PUBLISHED of our msg_id or a refused CONNACK;
 *          connect, CONNACK and stop fit in the attempt's budget
 *   clock  esp_timer_get_time(), vTaskDelay() with 64-bit tick arithmetic, esp_random()
 *   log    ESP_LOGx with tag "claim" (claim_core never passes secrets); the
 *          tags of esp_http_client / esp-mqtt / esp-tls are held at INFO or
 *          below before each request, so their DEBUG header dumps never run
 *
 * Call the port only from a task (not from an ISR or an event handler):
 * it blocks, and esp_mqtt_client_stop() must not run in the MQTT task.
 */
#ifndef CLAIM_PORT_IDF_H
#define CLAIM_PORT_IDF_H

#include <stddef.h>
#include <stdint.h>

#include "freertos/FreeRTOS.h"
#include "esp_err.h"
#include "claim/claim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* NVS layout written at the factory (see firmware/README.md). */
#define CLAIM_NVS_NAMESPACE "claim"
#define CLAIM_NVS_KEY_TOKEN "token"
#define CLAIM_NVS_KEY_SECRET "secret"
#define CLAIM_NVS_KEY_CA_PEM "ca_pem" /* optional: private CA, PEM string */

/* Fills *port with the ESP-IDF callbacks. ca_pem: NULL to verify https:// and
 * mqtts:// peers with ESP-IDF's certificate bundle, or a NUL-terminated PEM
 * (one or more CA certificates) that must outlive the port. */
void claim_port_idf_init(claim_port_t *port, const char *ca_pem);

/* Holds the log level of the libraries that dump request headers or the MQTT
 * CONNECT at DEBUG (esp_http_client, esp-mqtt, esp-tls, transports) at INFO or
 * below. Called by the port before every request. */
void claim_port_idf_quiet_libraries(void);

/* ms -> ticks for vTaskDelay()/waits, in 64-bit arithmetic (no pdMS_TO_TICKS overflow). */
TickType_t claim_port_idf_ticks(uint64_t ms);

/* 1 when the build has NVS encryption (CONFIG_NVS_ENCRYPTION). */
int claim_port_idf_nvs_encrypted(void);

/*
 * Reads the access token (required) and claim secret (optional: "" when the
 * key is absent) from NVS partition `partition` (initialised here, read-only;
 * with CONFIG_NVS_ENCRYPTION through nvs_flash_secure_init_partition() with the
 * keys of the registered key-protection scheme), namespace CLAIM_NVS_NAMESPACE.
 * Never erases the partition and never logs the values.
 * Returns ESP_OK, ESP_ERR_NVS_NOT_FOUND (partition, namespace or token missing),
 * ESP_ERR_NVS_INVALID_LENGTH (a value does not fit) or another esp_err_t.
 */
esp_err_t claim_port_idf_load_credentials(const char *partition,
                                          char *token, size_t token_cap,
                                          char *secret, size_t secret_cap);

/*
 * Reads a private CA (PEM, key CLAIM_NVS_KEY_CA_PEM) from the factory partition
 * (call claim_port_idf_load_credentials() first: it initialises the partition).
 * ESP_ERR_NVS_NOT_FOUND when absent, ESP_ERR_NVS_INVALID_LENGTH when it does
 * not fit in pem_cap, ESP_ERR_INVALID_RESPONSE when it is not a PEM certificate.
 */
esp_err_t claim_port_idf_load_ca_pem(const char *partition, char *pem, size_t pem_cap);

/*
 * Configures the claim button (input, pull-up). Checks the pin against this
 * chip first: a pin that does not exist or is wired to the flash gives
 * ESP_ERR_INVALID_ARG and an error log, never an abort.
 */
esp_err_t claim_port_idf_button_init(int pin);
int claim_port_idf_button_level(int pin);

#ifdef __cplusplus
}
#endif

#endif /* CLAIM_PORT_IDF_H */
