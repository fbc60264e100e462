#ifndef MQTT_CLIENT_MOCK_H
#define MQTT_CLIENT_MOCK_H
#include <stdbool.h>
#include <stdint.h>
#include "idf_mock.h"
typedef const char *esp_event_base_t;
typedef void (*esp_event_handler_t)(void *arg, esp_event_base_t base, int32_t id, void *data);
typedef enum { MQTT_EVENT_ANY = -1, MQTT_EVENT_ERROR = 0, MQTT_EVENT_CONNECTED, MQTT_EVENT_DISCONNECTED,
               MQTT_EVENT_PUBLISHED = 5 } esp_mqtt_event_id_t;
typedef enum { MQTT_ERROR_TYPE_NONE, MQTT_ERROR_TYPE_TCP_TRANSPORT, MQTT_ERROR_TYPE_CONNECTION_REFUSED } esp_mqtt_error_type_t;
typedef enum { MQTT_PROTOCOL_UNDEFINED, MQTT_PROTOCOL_V_3_1, MQTT_PROTOCOL_V_3_1_1 } esp_mqtt_protocol_ver_t;
typedef struct { esp_mqtt_error_type_t error_type; int connect_return_code; } esp_mqtt_error_codes_t;
typedef struct { int msg_id; esp_mqtt_error_codes_t *error_handle; } esp_mqtt_event_t;
typedef esp_mqtt_event_t *esp_mqtt_event_handle_t;
typedef struct {
    struct {
        struct { const char *uri; } address;
        struct { const char *certificate; esp_err_t (*crt_bundle_attach)(void *conf); } verification;
    } broker;
    struct { const char *username; const char *client_id; } credentials;
    struct { esp_mqtt_protocol_ver_t protocol_ver; int keepalive; } session;
    struct { int timeout_ms; int reconnect_timeout_ms; bool disable_auto_reconnect; } network;
} esp_mqtt_client_config_t;
typedef struct mock_mqtt *esp_mqtt_client_handle_t;
esp_mqtt_client_handle_t esp_mqtt_client_init(const esp_mqtt_client_config_t *cfg);
esp_err_t esp_mqtt_client_register_event(esp_mqtt_client_handle_t c, esp_mqtt_event_id_t ev,
                                         esp_event_handler_t handler, void *arg);
esp_err_t esp_mqtt_client_start(esp_mqtt_client_handle_t c);
int esp_mqtt_client_enqueue(esp_mqtt_client_handle_t c, const char *topic, const char *data, int len,
                            int qos, int retain, bool store);
esp_err_t esp_mqtt_client_stop(esp_mqtt_client_handle_t c);
esp_err_t esp_mqtt_client_destroy(esp_mqtt_client_handle_t c);
#endif
