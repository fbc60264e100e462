/*
 * claim_port_idf.c - claim_port_t on ESP-IDF v5.3+ (and v6 with espressif/mqtt).
 *
 * Type-checked against real ESP-IDF trees by `make -C firmware idf-check`
 * (README.md, "Checking against real ESP-IDF headers"); not built or run on a
 * chip by the project's CI. Rules this file keeps:
 *
 *   - Deadlines: every attempt ends within the timeout it is given. Each
 *     library call gets only what is left of that budget (esp_http_client: one
 *     phase at a time with esp_http_client_set_timeout_ms(); esp-mqtt, which
 *     applies network.timeout_ms to the connect, again to the CONNACK wait,
 *     and whose esp_mqtt_client_stop() waits for its task: a third each). Tick
 *     arithmetic is 64-bit (claim_ms_to_ticks). DNS look-ups are not bounded
 *     by ESP-IDF and are the one exception.
 *   - Secrets: the token travels in X-Device-Token / the MQTT user name.
 *     esp_http_client logs its whole header block at DEBUG, so before every
 *     request the chatty library tags are held at INFO or below
 *     (claim_port_idf_quiet_libraries); a build where that cannot work is
 *     refused below. Nothing here logs the token, the secret, a body or a URL.
 *   - TLS: a private CA (PEM) when one is configured, otherwise ESP-IDF's
 *     certificate bundle.
 *   - NVS: the factory partition is opened with the secure init path when NVS
 *     encryption is on, and never erased.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "freertos/task.h"

#include "driver/gpio.h"
#include "esp_http_client.h"
#include "esp_log.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "mqtt_client.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "sdkconfig.h"
#include "soc/soc_caps.h"
#if CONFIG_MBEDTLS_CERTIFICATE_BUNDLE
#include "esp_crt_bundle.h"
#endif

#include "claim_port_idf.h"

/* Debug logs of esp_http_client carry the X-Device-Token header. The port
 * lowers those tags at run time; that needs per-tag levels that can change at
 * run time. A build that compiles DEBUG logs in but cannot change a tag's
 * level would print the token: refuse it. */
#if CONFIG_LOG_MAXIMUM_LEVEL > 3 && \
    (defined(CONFIG_LOG_TAG_LEVEL_IMPL_NONE) || (defined(CONFIG_LOG_VERSION) && !defined(CONFIG_LOG_DYNAMIC_LEVEL_CONTROL)))
#error "claim: DEBUG/VERBOSE logs are compiled in but per-tag levels cannot be lowered at run time: esp_http_client would log the device token. Enable LOG_DYNAMIC_LEVEL_CONTROL and a tag-level implementation, or keep LOG_MAXIMUM_LEVEL at INFO."
#endif

static const char *TAG = "claim";

/* Floors for one library phase: a TLS handshake needs a moment even when the
 * budget is nearly spent; the core never starts an attempt with less than
 * these left unless its own deadline is that close. */
#define HTTP_PHASE_MIN_MS 500u
#define HTTP_DRAIN_MAX 4096     /* response bytes read (and dropped) after a POST */

typedef struct {
    const char *ca_pem; /* NULL: certificate bundle */
} port_ctx_t;

static port_ctx_t s_ctx; /* the port is a process-wide singleton: one claim task */

static uint64_t now_ms_u64(void)
{
    return (uint64_t)(esp_timer_get_time() / 1000);
}

static TickType_t ticks_for_ms(uint64_t ms)
{
    uint32_t t = claim_ms_to_ticks(ms, (uint32_t)configTICK_RATE_HZ, (uint32_t)(portMAX_DELAY - 1u));
    return (TickType_t)t;
}

TickType_t claim_port_idf_ticks(uint64_t ms)
{
    return ticks_for_ms(ms);
}

/* Ticks for a wait that must end by a deadline ms away: rounded down (the
 * caller loops or gives up), 64-bit, so a wait never overshoots its deadline. */
static TickType_t ticks_within_ms(uint32_t ms)
{
    uint64_t t = (uint64_t)ms * (uint64_t)configTICK_RATE_HZ / 1000u;
    return (TickType_t)(t >= (uint64_t)portMAX_DELAY ? portMAX_DELAY - 1u : t);
}

/* ------------------------------------------------------------ log level */

/* Tags of the libraries that may print request headers or the MQTT CONNECT
 * (user name = token) at DEBUG/VERBOSE. */
static const char *const chatty_tags[] = {
    "HTTP_CLIENT", "mqtt_client", "mqtt5_client", "outbox", "transport_base", "transport",
    "transport_ws", "esp-tls", "esp-tls-mbedtls",
};

void claim_port_idf_quiet_libraries(void)
{
    size_t i;
    for (i = 0; i < sizeof(chatty_tags) / sizeof(chatty_tags[0]); i++) {
        if (esp_log_level_get(chatty_tags[i]) > ESP_LOG_INFO) {
            esp_log_level_set(chatty_tags[i], ESP_LOG_INFO);
        }
    }
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
    return ESP_OK;
}

static claim_io_t http_err_to_io(esp_err_t err, uint64_t end)
{
    int timed_out = now_ms_u64() >= end;
    if (err == ESP_ERR_HTTP_CONNECT) {
        return timed_out ? CLAIM_IO_TIMEOUT : CLAIM_IO_UNREACHABLE;
    }
    if (err == ESP_ERR_HTTP_EAGAIN || err == -ESP_ERR_HTTP_EAGAIN) {
        return CLAIM_IO_TIMEOUT;
    }
#ifdef ESP_ERR_HTTP_READ_TIMEOUT /* defined from v5.5 */
    if (err == ESP_ERR_HTTP_READ_TIMEOUT) {
        return CLAIM_IO_TIMEOUT;
    }
#endif
    return timed_out ? CLAIM_IO_TIMEOUT : CLAIM_IO_ERROR;
}

/* Gives the next phase what is left, split in `parts` (later phases need time too). */
static int phase_budget(esp_http_client_handle_t client, uint64_t end, uint32_t parts)
{
    uint32_t left = claim_ms_left(now_ms_u64(), end);
    if (left == 0u) {
        return 0;
    }
    esp_http_client_set_timeout_ms(client, (int)claim_share_ms(left, parts, HTTP_PHASE_MIN_MS));
    return 1;
}

/* One request: open (connect + request line + headers), write the body,
 * fetch the response headers, read the body (into out, or dropped). */
static claim_io_t http_exchange(esp_http_client_method_t method, const char *url,
                                const claim_header_t *headers, size_t n_headers, const char *body,
                                size_t body_len, uint32_t timeout_ms, claim_http_response_t *resp,
                                char *out, size_t out_cap, size_t *out_len)
{
    const uint64_t end = now_ms_u64() + timeout_ms;
    http_ctx_t hc = {.resp = resp};
    esp_http_client_config_t cfg;
    esp_http_client_handle_t client;
    esp_err_t err = ESP_OK;
    claim_io_t io = CLAIM_IO_OK;
    size_t i, stored = 0, dropped = 0;
    int64_t clen;
    char scratch[128];

    if (out_len != NULL) {
        *out_len = 0;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.url = url;
    cfg.method = method;
    cfg.timeout_ms = (int)claim_share_ms(timeout_ms, 3u, HTTP_PHASE_MIN_MS);
    cfg.disable_auto_redirect = true; /* a redirect is an answer (3xx), not something to follow */
    cfg.event_handler = http_event;
    cfg.user_data = &hc;
    if (s_ctx.ca_pem != NULL) {
        cfg.cert_pem = s_ctx.ca_pem; /* private CA */
    } else {
#if CONFIG_MBEDTLS_CERTIFICATE_BUNDLE
        cfg.crt_bundle_attach = esp_crt_bundle_attach; /* public CAs */
#endif
    }

    claim_port_idf_quiet_libraries();
    client = esp_http_client_init(&cfg);
    if (client == NULL) {
        return CLAIM_IO_ERROR;
    }
    if (method == HTTP_METHOD_POST) {
        err = esp_http_client_set_header(client, "Content-Type", "application/json");
    } else {
        err = esp_http_client_set_header(client, "Accept", "application/json");
    }
    for (i = 0; i < n_headers && err == ESP_OK; i++) {
        err = esp_http_client_set_header(client, headers[i].name, headers[i].value);
    }
    if (err != ESP_OK) {
        esp_http_client_cleanup(client);
        return CLAIM_IO_ERROR;
    }

    /* 1. connect, send the request line and headers: a third of the budget */
    if (!phase_budget(client, end, 3u)) {
        io = CLAIM_IO_TIMEOUT;
        goto done;
    }
    err = esp_http_client_open(client, (int)body_len);
    if (err != ESP_OK) {
        io = http_err_to_io(err, end);
        ESP_LOGD(TAG, "http open: %s", esp_err_to_name(err));
        goto done;
    }
    /* 2. the body */
    for (i = 0; i < body_len;) {
        int w;
        if (!phase_budget(client, end, 2u)) {
            io = CLAIM_IO_TIMEOUT;
            goto done;
        }
        w = esp_http_client_write(client, body + i, (int)(body_len - i));
        if (w <= 0) {
            io = now_ms_u64() >= end ? CLAIM_IO_TIMEOUT : CLAIM_IO_ERROR;
            goto done;
        }
        i += (size_t)w;
    }
    /* 3. the response headers: half of what is left for a GET (its body is
     * the answer), all of it for a POST: its status is the answer, and
     * claimsvc may hold it for Prefer: wait. */
    if (!phase_budget(client, end, out != NULL ? 2u : 1u)) {
        io = CLAIM_IO_TIMEOUT;
        goto done;
    }
    clen = esp_http_client_fetch_headers(client);
    if (clen < 0) {
        io = http_err_to_io((esp_err_t)clen, end);
        goto done;
    }
    resp->status = esp_http_client_get_status_code(client);
    /* 4. the body: kept for a GET, read and dropped (bounded) for a POST */
    for (;;) {
        int n;
        char *dst;
        int room;
        if (!phase_budget(client, end, 1u)) {
            break; /* the status is what counts; the rest of the body is not waited for */
        }
        if (out != NULL && stored + 1u < out_cap) {
            dst = out + stored;
            room = (int)(out_cap - 1u - stored);
        } else {
            dst = scratch;
            room = (int)sizeof(scratch);
        }
        n = esp_http_client_read(client, dst, room);
        if (n <= 0) {
            break; /* end of body, error or timeout */
        }
        if (dst == scratch) {
            dropped += (size_t)n;
            if (out != NULL) {
                resp->body_truncated = 1;
            }
            if (dropped > HTTP_DRAIN_MAX) {
                break;
            }
        } else {
            stored += (size_t)n;
        }
    }
    if (out != NULL) {
        out[stored] = '\0';
        *out_len = stored;
    }
    io = CLAIM_IO_OK;

done:
    esp_http_client_close(client);
    esp_http_client_cleanup(client);
    return io;
}

static claim_io_t idf_http_post(void *ctx, const char *url, const claim_header_t *headers,
                                size_t n_headers, const char *body, size_t body_len,
                                uint32_t timeout_ms, claim_http_response_t *resp)
{
    (void)ctx;
    return http_exchange(HTTP_METHOD_POST, url, headers, n_headers, body, body_len, timeout_ms, resp,
                         NULL, 0, NULL);
}

static claim_io_t idf_http_get(void *ctx, const char *url, const claim_header_t *headers,
                               size_t n_headers, char *body, size_t body_cap, size_t *body_len,
                               uint32_t timeout_ms, claim_http_response_t *resp)
{
    (void)ctx;
    if (body == NULL || body_cap == 0u || body_len == NULL) {
        return CLAIM_IO_ERROR;
    }
    body[0] = '\0';
    return http_exchange(HTTP_METHOD_GET, url, headers, n_headers, NULL, 0, timeout_ms, resp, body,
                         body_cap, body_len);
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
    const uint64_t start = now_ms_u64();
    const uint64_t end = start + timeout_ms;
    /* esp-mqtt uses network.timeout_ms for the TCP/TLS connect and again for the
     * CONNACK; esp_mqtt_client_stop() then waits for its task, which may sit in
     * one more such wait. A third of the budget each, the last third kept for
     * the stop, so that the whole attempt ends by `end`, whatever the budget
     * (the Kconfig minimum, or what is left of the deadline). */
    const uint32_t reserve = timeout_ms / 3u;
    const uint64_t waits_end = end - reserve;
    mqtt_ctx_t mc = {.bits = NULL, .acked_msg_id = -1, .connack_rc = 0};
    char client_id[24];
    esp_mqtt_client_config_t cfg;
    esp_mqtt_client_handle_t client;
    EventBits_t got;
    claim_io_t io = CLAIM_IO_TIMEOUT;
    int msg_id;
    (void)ctx;

    /* Own client id: must not collide with the device's telemetry connection. */
    snprintf(client_id, sizeof(client_id), "claim-%08" PRIx32, esp_random());

    memset(&cfg, 0, sizeof(cfg));
    cfg.broker.address.uri = broker_uri;
    cfg.credentials.username = username; /* ThingsBoard: access token as user name, no password */
    cfg.credentials.client_id = client_id;
    cfg.session.protocol_ver = MQTT_PROTOCOL_V_3_1_1;
    cfg.session.keepalive = 30;
    /* esp-mqtt's own waits (connect, CONNACK, the task a stop waits for) get
     * the stop's reserve: with a small budget a whole step would overrun it. */
    cfg.network.timeout_ms = (int)reserve;
    cfg.network.disable_auto_reconnect = true; /* claim_core owns retries */
    /* After a failed connect esp-mqtt's task waits half of this before it
     * notices a stop (default 10 s: esp_mqtt_client_stop() blocked ~5 s);
     * with auto-reconnect off it has no other use. */
    cfg.network.reconnect_timeout_ms = 200;
    if (s_ctx.ca_pem != NULL) {
        cfg.broker.verification.certificate = s_ctx.ca_pem; /* private CA (PEM, NUL-terminated) */
    } else {
#if CONFIG_MBEDTLS_CERTIFICATE_BUNDLE
        cfg.broker.verification.crt_bundle_attach = esp_crt_bundle_attach; /* mqtts:// */
#endif
    }

    claim_port_idf_quiet_libraries();
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
                              ticks_within_ms(claim_ms_left(now_ms_u64(), waits_end)));
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
            /* 3. PUBACK for msg_id */
            io = CLAIM_IO_TIMEOUT;
            for (;;) {
                uint32_t left = claim_ms_left(now_ms_u64(), waits_end);
                if (mc.acked_msg_id == msg_id) {
                    io = CLAIM_IO_OK;
                    break;
                }
                if (ticks_within_ms(left) == 0u) {
                    break; /* less than a tick left */
                }
                got = xEventGroupWaitBits(mc.bits, MQ_PUBLISHED | MQ_FAILED, pdTRUE, pdFALSE,
                                          ticks_within_ms(left));
                if (mc.acked_msg_id == msg_id) {
                    io = CLAIM_IO_OK;
                    break;
                }
                if (got & MQ_FAILED) {
                    io = CLAIM_IO_ERROR;
                    break;
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
    return now_ms_u64();
}

static void idf_sleep_ms(void *ctx, uint32_t ms)
{
    (void)ctx;
    vTaskDelay(ticks_for_ms(ms));
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

void claim_port_idf_init(claim_port_t *port, const char *ca_pem)
{
    s_ctx.ca_pem = ca_pem;
    memset(port, 0, sizeof(*port));
    port->ctx = &s_ctx;
    port->http_post = idf_http_post;
    port->http_get = idf_http_get;
    port->mqtt_publish = idf_mqtt_publish;
    port->now_ms = idf_now_ms;
    port->sleep_ms = idf_sleep_ms;
    port->random_u32 = idf_random_u32;
    port->log = idf_log;
}

/* ------------------------------------------------------------------ NVS */

static esp_err_t open_factory_partition(const char *partition)
{
#if CONFIG_NVS_ENCRYPTION
    /* Encrypted NVS: the plain init would read ciphertext, fail NVS's checks
     * and could erase pages. Read the XTS keys through the registered scheme
     * (flash-encryption-protected nvs_keys partition, or HMAC eFuse key) and
     * init with them. Never generate keys here: the factory image was
     * encrypted with the device's existing keys. */
    nvs_sec_cfg_t sec;
    nvs_sec_scheme_t *scheme = nvs_flash_get_default_security_scheme();
    esp_err_t err;
    if (scheme == NULL) {
        ESP_LOGE(TAG, "NVS encryption is on but no key-protection scheme is registered");
        return ESP_ERR_INVALID_STATE;
    }
    memset(&sec, 0, sizeof(sec));
    err = nvs_flash_read_security_cfg_v2(scheme, &sec);
    if (err == ESP_OK) {
        err = nvs_flash_secure_init_partition(partition, &sec);
    } else {
        ESP_LOGE(TAG, "cannot read the NVS encryption keys: %s", esp_err_to_name(err));
    }
    memset(&sec, 0, sizeof(sec)); /* key material off the stack */
    return err;
#else
    return nvs_flash_init_partition(partition);
#endif
}

int claim_port_idf_nvs_encrypted(void)
{
#if CONFIG_NVS_ENCRYPTION
    return 1;
#else
    return 0;
#endif
}

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
    err = open_factory_partition(partition);
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

esp_err_t claim_port_idf_load_ca_pem(const char *partition, char *pem, size_t pem_cap)
{
    nvs_handle_t h;
    size_t len = pem_cap;
    esp_err_t err;
    if (partition == NULL || pem == NULL || pem_cap == 0) {
        return ESP_ERR_INVALID_ARG;
    }
    pem[0] = '\0';
    err = nvs_open_from_partition(partition, CLAIM_NVS_NAMESPACE, NVS_READONLY, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_get_str(h, CLAIM_NVS_KEY_CA_PEM, pem, &len);
    nvs_close(h);
    if (err == ESP_OK && (len == 0u || !claim_pem_looks_valid(pem, len - 1u))) {
        err = ESP_ERR_INVALID_RESPONSE; /* not a PEM certificate */
    }
    if (err != ESP_OK) {
        pem[0] = '\0';
    }
    return err;
}

/* ---------------------------------------------------------------- button */

/* GPIOs wired to the SPI flash (and PSRAM) on the common modules of each chip. */
static uint64_t flash_pins(void)
{
#if CONFIG_IDF_TARGET_ESP32
    return 0x3Full << 6; /* GPIO6..11 */
#elif CONFIG_IDF_TARGET_ESP32C3 || CONFIG_IDF_TARGET_ESP32C2
    return 0x3Full << 12; /* GPIO12..17 */
#elif CONFIG_IDF_TARGET_ESP32S2 || CONFIG_IDF_TARGET_ESP32S3
    return 0x7Full << 26; /* GPIO26..32 */
#elif CONFIG_IDF_TARGET_ESP32C6
    return 0x7Full << 24; /* GPIO24..30 */
#else
    return 0;
#endif
}

esp_err_t claim_port_idf_button_init(int pin)
{
    gpio_config_t io;
    esp_err_t err;
    switch (claim_gpio_check(pin, (uint64_t)SOC_GPIO_VALID_GPIO_MASK, flash_pins())) {
    case CLAIM_GPIO_NOT_A_PIN:
        ESP_LOGE(TAG, "claim button: GPIO %d is not an input GPIO of the %s", pin, CONFIG_IDF_TARGET);
        return ESP_ERR_INVALID_ARG;
    case CLAIM_GPIO_RESERVED:
        ESP_LOGE(TAG, "claim button: GPIO %d is wired to the flash on the %s", pin, CONFIG_IDF_TARGET);
        return ESP_ERR_INVALID_ARG;
    case CLAIM_GPIO_OK:
        break;
    }
    memset(&io, 0, sizeof(io));
    io.pin_bit_mask = 1ULL << (unsigned)pin;
    io.mode = GPIO_MODE_INPUT;
    io.pull_up_en = GPIO_PULLUP_ENABLE;
    io.pull_down_en = GPIO_PULLDOWN_DISABLE;
    io.intr_type = GPIO_INTR_DISABLE;
    err = gpio_config(&io);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "claim button: GPIO %d: %s", pin, esp_err_to_name(err));
    }
    return err;
}

int claim_port_idf_button_level(int pin)
{
    return gpio_get_level((gpio_num_t)pin);
}
