#ifndef ESP_HTTP_CLIENT_MOCK_H
#define ESP_HTTP_CLIENT_MOCK_H
#include <stdbool.h>
#include <stdint.h>
#include "idf_mock.h"
typedef enum { HTTP_METHOD_GET, HTTP_METHOD_POST } esp_http_client_method_t;
typedef enum { HTTP_EVENT_ERROR, HTTP_EVENT_ON_HEADER } esp_http_client_event_id_t;
typedef struct {
    esp_http_client_event_id_t event_id;
    char *header_key;
    char *header_value;
    void *user_data;
} esp_http_client_event_t;
typedef esp_err_t (*http_event_handle_cb)(esp_http_client_event_t *evt);
typedef struct {
    const char *url;
    esp_http_client_method_t method;
    int timeout_ms;
    bool disable_auto_redirect;
    http_event_handle_cb event_handler;
    void *user_data;
    const char *cert_pem;
    esp_err_t (*crt_bundle_attach)(void *conf);
} esp_http_client_config_t;
typedef struct mock_http *esp_http_client_handle_t;
esp_http_client_handle_t esp_http_client_init(const esp_http_client_config_t *cfg);
esp_err_t esp_http_client_set_header(esp_http_client_handle_t c, const char *key, const char *value);
esp_err_t esp_http_client_set_timeout_ms(esp_http_client_handle_t c, int timeout_ms);
esp_err_t esp_http_client_open(esp_http_client_handle_t c, int write_len);
int esp_http_client_write(esp_http_client_handle_t c, const char *buf, int len);
int64_t esp_http_client_fetch_headers(esp_http_client_handle_t c);
int esp_http_client_get_status_code(esp_http_client_handle_t c);
int esp_http_client_read(esp_http_client_handle_t c, char *buf, int len);
esp_err_t esp_http_client_close(esp_http_client_handle_t c);
esp_err_t esp_http_client_cleanup(esp_http_client_handle_t c);
#endif
