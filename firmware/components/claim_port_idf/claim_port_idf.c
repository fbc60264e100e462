/*
 * claim_port_idf.c - claim_port_t on ESP-IDF v5.3+ (and v6 with espressif/mqtt).
 *
 * This file cannot be compiled on the project's machines (no ESP-IDF there);
 * it was written against the v5 headers esp_http_client.h and mqtt_client.h
 * and kept deliberately small. Every path returns within the timeout it is
 * given (plus DNS), frees what it allocated, and never logs the token, the
 * secret, the body or a URL.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "freertos/task.h"

#include "esp_http_client.h"
#include "esp_log.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "mqtt_client.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "sdkconfig.h"
#if CONFIG_MBEDTLS_CERTIFICATE_BUNDLE
#include "esp_crt_bundle.h"
#endif

#include "claim_port_idf.h"

static const char *TAG = "claim";

static int64_t now_ms_i64(void)
{
    return esp_timer_get_time() / 1000;
}

static TickType_t ticks_for(int64_t ms)
{
    TickType_t t;
    if (ms <= 0) {
        return 0;
    }
    t = pdMS_TO_TICKS((uint32_t)ms);
    return t == 0 ? 1 : t;
}

/* ------------------------------------------------------------------ HTTP */

typedef struct {
    claim_http_response_t *resp;
} http_ctx_t;

static esp_err_t http_event(esp_http_client_event_t *evt)
{
    http_ctx_t *hc = (http_ctx_t *)evt->user_data;
    if (evt->event_id == HTTP_EVENT_ON_HEADER && hc != NULL && evt->header_key != NULL &&
        evt->header_value != NULL && strcasecmp(evt->header_key, "Retry-After") == 0) {
        snprintf(hc->resp->retry_after, sizeof(hc->resp->retry_after), "%s", evt->header_value);
    }
    return ESP_OK; /* the body (a claim view or a problem) is not needed */
}

static claim_io_t http_error_to_io(esp_err_t err, bool timed_out)
{
    if (err == ESP_ERR_HTTP_CONNECT) {
        return timed_out ? CLAIM_IO_TIMEOUT : CLAIM_IO_UNREACHABLE;
    }
    if (err == ESP_ERR_HTTP_EAGAIN) {
        return CLAIM_IO_TIMEOUT;
    }
#ifdef ESP_ERR_HTTP_READ_TIMEOUT /* defined from v5.5 */
    if (err == ESP_ERR_HTTP_READ_TIMEOUT) {
        return CLAIM_IO_TIMEOUT;
    }
#endif
    return timed_out ? CLAIM_IO_TIMEOUT : CLAIM_IO_ERROR;
}

static claim_io_t idf_http_post(void *ctx, const char *url, const claim_header_t *headers,
                                size_t n_headers, const char *body, size_t body_len,
                                uint32_t timeout_ms, claim_http_response_t *resp)
{
    http_ctx_t hc = {.resp = resp};
    esp_http_client_config_t cfg = {
        .url = url,
        .method = HTTP_METHOD_POST,
        .timeout_ms = (int)timeout_ms,
        .disable_auto_redirect = true, /* a redirect is an answer (3xx), not something to follow */
        .event_handler = http_event,
        .user_data = &hc,
#if CONFIG_MBEDTLS_CERTIFICATE_BUNDLE
        .crt_bundle_attach = esp_crt_bundle_attach, /* https:// service URLs */
#endif
    };
    esp_http_client_handle_t client;
    esp_err_t err = ESP_OK;
    int64_t t0;
    claim_io_t io;
    size_t i;
    (void)ctx;

    client = esp_http_client_init(&cfg);
    if (client == NULL) {
        return CLAIM_IO_ERROR;
    }
    err = esp_http_client_set_header(client, "Content-Type", "application/json");
    for (i = 0; i < n_headers && err == ESP_OK; i++) {
        err = esp_http_client_set_header(client, headers[i].name, headers[i].value);
    }
    if (err == ESP_OK) {
        err = esp_http_client_set_post_field(client, body, (int)body_len);
    }
    if (err != ESP_OK) {
        esp_http_client_cleanup(client);
        return CLAIM_IO_ERROR;
    }
    t0 = now_ms_i64();
    err = esp_http_client_perform(client);
    if (err == ESP_OK) {
        resp->status = esp_http_client_get_status_code(client);
        io = CLAIM_IO_OK;
    } else {
        io = http_error_to_io(err, now_ms_i64() - t0 >= (int64_t)timeout_ms);
        ESP_LOGD(TAG, "http: %s", esp_err_to_name(err));
    }
    esp_http_client_cleanup(client);
    return io;
}

/* ------------------------------------------------------------------ MQTT */

#define MQ_CONNECTED BIT0
#define MQ_PUBLISHED BIT1
#define MQ_REFUSED BIT2
#define MQ_FAILED BIT3

typedef struct {
    EventGroupHandle_t bits;
    volatile int acked_msg_id; /* msg_id of the last MQTT_EVENT_PUBLISHED (PUBACK for QoS 1) */
    volatile int connack_rc;
} mqtt_ctx_t;

/* Runs in the esp-mqtt task: only record and signal, never stop the client here. */
static void mqtt_event(void *arg, esp_event_base_t base, int32_t event_id, void *event_data)
{
    mqtt_ctx_t *mc = (mqtt_ctx_t *)arg;
    esp_mqtt_event_handle_t ev = (esp_mqtt_event_handle_t)event_data;
    (void)base;
    switch ((esp_mqtt_event_id_t)event_id) {
    case MQTT_EVENT_CONNECTED:
        xEventGroupSetBits(mc->bits, MQ_CONNECTED);
        break;
    case MQTT_EVENT_PUBLISHED:
        mc->acked_msg_id = ev->msg_id;
        xEventGroupSetBits(mc->bits, MQ_PUBLISHED);
        break;
    case MQTT_EVENT_ERROR:
        if (ev->error_handle != NULL &&
            ev->error_handle->error_type == MQTT_ERROR_TYPE_CONNECTION_REFUSED) {
            mc->connack_rc = (int)ev->error_handle->connect_return_code;
            xEventGroupSetBits(mc->bits, MQ_REFUSED);
        } else {
            xEventGroupSetBits(mc->bits, MQ_FAILED);
        }
        break;
    case MQTT_EVENT_DISCONNECTED:
        xEventGroupSetBits(mc->bits, MQ_FAILED);
        break;
    default:
        break;
    }
}

static claim_io_t idf_mqtt_publish(void *ctx, const char *broker_uri, const char *username,
                                   const char *topic, const char *payload, size_t payload_len,
                                   uint32_t timeout_ms, int *connack_rc)
{
    mqtt_ctx_t mc = {.bits = NULL, .acked_msg_id = -1, .connack_rc = 0};
    char client_id[24];
    esp_mqtt_client_handle_t client;
    int64_t deadline = now_ms_i64() + (int64_t)timeout_ms;
    EventBits_t got;
    claim_io_t io = CLAIM_IO_TIMEOUT;
    int msg_id;
    (void)ctx;

    /* Own client id: must not collide with the device's telemetry connection. */
    snprintf(client_id, sizeof(client_id), "claim-%08lx", (unsigned long)esp_random());

    esp_mqtt_client_config_t cfg = {
        .broker.address.uri = broker_uri,
        .credentials.username = username, /* ThingsBoard: access token as username, no password */
        .credentials.client_id = client_id,
        .session.protocol_ver = MQTT_PROTOCOL_V_3_1_1,
        .session.keepalive = 30,
        .network.timeout_ms = (int)timeout_ms,
        .network.disable_auto_reconnect = true, /* claim_core owns retries */
#if CONFIG_MBEDTLS_CERTIFICATE_BUNDLE
        .broker.verification.crt_bundle_attach = esp_crt_bundle_attach, /* mqtts:// */
#endif
    };

    mc.bits = xEventGroupCreate();
    if (mc.bits == NULL) {
        return CLAIM_IO_ERROR;
    }
    client = esp_mqtt_client_init(&cfg);
    if (client == NULL) {
        vEventGroupDelete(mc.bits);
        return CLAIM_IO_ERROR;
    }
    if (esp_mqtt_client_register_event(client, MQTT_EVENT_ANY, mqtt_event, &mc) != ESP_OK ||
        esp_mqtt_client_start(client) != ESP_OK) {
        esp_mqtt_client_destroy(client);
        vEventGroupDelete(mc.bits);
        return CLAIM_IO_ERROR;
    }

    /* 1. CONNACK */
    got = xEventGroupWaitBits(mc.bits, MQ_CONNECTED | MQ_REFUSED | MQ_FAILED, pdFALSE, pdFALSE,
                              ticks_for(deadline - now_ms_i64()));
    if (got & MQ_REFUSED) {
        *connack_rc = mc.connack_rc;
        io = CLAIM_IO_REFUSED;
    } else if (got & MQ_FAILED) {
        io = (got & MQ_CONNECTED) ? CLAIM_IO_ERROR : CLAIM_IO_UNREACHABLE;
    } else if (got & MQ_CONNECTED) {
        /* 2. PUBLISH at QoS 1. enqueue() does not block this task; the PUBACK may
         * arrive before we read msg_id, so the handler keeps the acked id. */
        msg_id = esp_mqtt_client_enqueue(client, topic, payload, (int)payload_len, 1, 0, true);
        if (msg_id < 0) {
            io = CLAIM_IO_ERROR; /* -1 failure, -2 outbox full */
        } else {
            /* 3. PUBACK for msg_id, bounded by the deadline */
            io = CLAIM_IO_TIMEOUT;
            while (now_ms_i64() < deadline) {
                got = xEventGroupWaitBits(mc.bits, MQ_PUBLISHED | MQ_FAILED, pdTRUE, pdFALSE,
                                          ticks_for(deadline - now_ms_i64()));
                if (mc.acked_msg_id == msg_id) {
                    io = CLAIM_IO_OK;
                    break;
                }
                if (got & MQ_FAILED) {
                    io = CLAIM_IO_ERROR;
                    break;
                }
                if ((got & MQ_PUBLISHED) == 0) {
                    break; /* timed out */
                }
            }
        }
    }

    /* 4. Tear down from this task (not allowed in the event handler). */
    esp_mqtt_client_stop(client);
    esp_mqtt_client_destroy(client);
    vEventGroupDelete(mc.bits);
    return io;
}

/* ---------------------------------------------------------- clock, log */

static uint64_t idf_now_ms(void *ctx)
{
    (void)ctx;
    return (uint64_t)now_ms_i64();
}

static void idf_sleep_ms(void *ctx, uint32_t ms)
{
    (void)ctx;
    vTaskDelay(ticks_for((int64_t)ms));
}

static uint32_t idf_random_u32(void *ctx)
{
    (void)ctx;
    return esp_random();
}

static void idf_log(void *ctx, claim_log_level_t level, const char *msg)
{
    (void)ctx;
    switch (level) {
    case CLAIM_LOG_ERROR: ESP_LOGE(TAG, "%s", msg); break;
    case CLAIM_LOG_WARN: ESP_LOGW(TAG, "%s", msg); break;
    case CLAIM_LOG_INFO: ESP_LOGI(TAG, "%s", msg); break;
    default: ESP_LOGD(TAG, "%s", msg); break;
    }
}

void claim_port_idf_init(claim_port_t *port)
{
    memset(port, 0, sizeof(*port));
    port->ctx = NULL;
    port->http_post = idf_http_post;
    port->mqtt_publish = idf_mqtt_publish;
    port->now_ms = idf_now_ms;
    port->sleep_ms = idf_sleep_ms;
    port->random_u32 = idf_random_u32;
    port->log = idf_log;
}

/* ------------------------------------------------------------------ NVS */

esp_err_t claim_port_idf_load_credentials(const char *partition, char *token, size_t token_cap,
                                          char *secret, size_t secret_cap)
{
    nvs_handle_t h;
    size_t len;
    esp_err_t err;

    if (partition == NULL || token == NULL || secret == NULL || token_cap == 0 || secret_cap == 0) {
        return ESP_ERR_INVALID_ARG;
    }
    token[0] = '\0';
    secret[0] = '\0';
    /* Factory data: never erase this partition on error (unlike the app's "nvs"). */
    err = nvs_flash_init_partition(partition);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_open_from_partition(partition, CLAIM_NVS_NAMESPACE, NVS_READONLY, &h);
    if (err != ESP_OK) {
        return err;
    }
    len = token_cap;
    err = nvs_get_str(h, CLAIM_NVS_KEY_TOKEN, token, &len);
    if (err == ESP_OK) {
        len = secret_cap;
        err = nvs_get_str(h, CLAIM_NVS_KEY_SECRET, secret, &len);
        if (err == ESP_ERR_NVS_NOT_FOUND) {
            secret[0] = '\0'; /* no secret: claim without secretKey */
            err = ESP_OK;
        }
    }
    nvs_close(h);
    if (err != ESP_OK) {
        memset(token, 0, token_cap);
        memset(secret, 0, secret_cap);
    }
    return err;
}
