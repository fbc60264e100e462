/*
 * claim_port_idf.h - claim_port_t for ESP-IDF (v5.3+, v6-ready).
 *
 *   HTTP   esp_http_client (blocking perform, no redirects, cert bundle for https)
 *   MQTT   one short-lived esp-mqtt client per attempt (auto-reconnect off),
 *          waits for MQTT_EVENT_PUBLISHED of our msg_id or a refused CONNACK
 *   clock  esp_timer_get_time(), vTaskDelay(), esp_random()
 *   log    ESP_LOGx with tag "claim" (claim_core never passes secrets)
 *
 * Call the port only from a task (not from an ISR or an event handler):
 * it blocks, and esp_mqtt_client_stop() must not run in the MQTT task.
 */
#ifndef CLAIM_PORT_IDF_H
#define CLAIM_PORT_IDF_H

#include <stddef.h>

#include "esp_err.h"
#include "claim/claim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* NVS layout written at the factory (see firmware/README.md). */
#define CLAIM_NVS_NAMESPACE "claim"
#define CLAIM_NVS_KEY_TOKEN "token"
#define CLAIM_NVS_KEY_SECRET "secret"

/* Fills *port with the ESP-IDF callbacks (ctx is unused and NULL). */
void claim_port_idf_init(claim_port_t *port);

/*
 * Reads the access token (required) and claim secret (optional: "" when the
 * key is absent) from NVS partition `partition` (initialised here, read-only),
 * namespace CLAIM_NVS_NAMESPACE. Never logs the values.
 * Returns ESP_OK, ESP_ERR_NVS_NOT_FOUND (partition, namespace or token missing),
 * ESP_ERR_NVS_INVALID_LENGTH (a value does not fit) or another esp_err_t.
 */
esp_err_t claim_port_idf_load_credentials(const char *partition,
                                          char *token, size_t token_cap,
                                          char *secret, size_t secret_cap);

#ifdef __cplusplus
}
#endif

#endif /* CLAIM_PORT_IDF_H */
