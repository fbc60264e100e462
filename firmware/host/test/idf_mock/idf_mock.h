/*
 * idf_mock.h - a stand-in for the few ESP-IDF APIs claim_port_idf.c calls, so
 * that the port itself runs on the host against a scripted, recording fake
 * (the headers in this directory have ESP-IDF's names and only what the port
 * uses). It proves what the port does with the APIs; that it matches the real
 * headers is proven by `make -C firmware idf-check`.
 */
#ifndef IDF_MOCK_H
#define IDF_MOCK_H

#include <stddef.h>
#include <stdint.h>

typedef int esp_err_t;
#define ESP_OK 0
#define ESP_FAIL -1
#define ESP_ERR_NO_MEM 0x101
#define ESP_ERR_INVALID_ARG 0x102
#define ESP_ERR_INVALID_STATE 0x103
#define ESP_ERR_INVALID_RESPONSE 0x108
#define ESP_ERR_NOT_FOUND 0x105
#define ESP_ERR_NVS_NOT_FOUND 0x1102
#define ESP_ERR_HTTP_CONNECT 0x7003
#define ESP_ERR_HTTP_EAGAIN 0x7007
const char *esp_err_to_name(esp_err_t err);

#define MOCK_MAX 64

typedef struct {
    /* clock */
    int64_t now_us;
    /* logging: levels per tag, and what was printed */
    char log[8192];
    size_t log_len;
    /* NVS */
    int nvs_scheme_present;
    esp_err_t nvs_read_cfg_err;
    int n_read_cfg, n_secure_init, n_plain_init, n_erase;
    char secure_init_label[16];
    uint8_t secure_init_key0;
    const char *nvs_token, *nvs_secret;
    /* HTTP: every timeout the client was given and when */
    int http_timeouts[MOCK_MAX];
    int64_t http_timeout_at_us[MOCK_MAX];
    int n_http_timeouts;
    int http_phase_takes_all;  /* each blocking call uses its whole timeout, then fails */
    int http_status;           /* when it answers */
    const char *http_cert_pem;
    int http_bundle;
    int http_header_level_ok;  /* 0 once a header was set while HTTP_CLIENT logged DEBUG */
    /* MQTT */
    int mqtt_network_timeout_ms;
    const char *mqtt_cert;
    int mqtt_bundle;
    int mqtt_answer;           /* 0: nothing ever arrives; 1: CONNACK ok + PUBACK */
    int64_t mqtt_stop_takes_us; /* worst case: stop waits network.timeout_ms */
    /* GPIO */
    int n_gpio_config;
    uint64_t gpio_mask;
    /* task delay */
    uint32_t last_delay_ticks;
} idf_mock_t;

extern idf_mock_t g_idf;

void idf_mock_reset(void);
/* Sets every tag to level (what a developer chasing a bug does). */
void idf_mock_all_levels(int level);
int idf_mock_level(const char *tag);

#endif
