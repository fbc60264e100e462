/* idf_mock.c - see idf_mock.h. Time only moves when a fake blocking call says
 * so: in the worst case each one uses the whole timeout it was given. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "driver/gpio.h"
#include "esp_crt_bundle.h"
#include "esp_http_client.h"
#include "esp_log.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "freertos/event_groups.h"
#include "freertos/task.h"
#include "mqtt_client.h"
#include "nvs_flash.h"

idf_mock_t g_idf;
static int s_nvs_ready;

const char *esp_err_to_name(esp_err_t err)
{
    (void)err;
    return "ERR";
}

/* ---------------------------------------------------------------- log */

static struct {
    char tag[24];
    int level;
} s_levels[32];
static size_t s_n_levels;
static int s_default_level = ESP_LOG_INFO;

void idf_mock_reset(void)
{
    memset(&g_idf, 0, sizeof(g_idf));
    g_idf.now_us = 5000000;
    g_idf.nvs_scheme_present = 1;
    g_idf.http_status = 200;
    g_idf.http_header_level_ok = 1;
    s_n_levels = 0;
    s_default_level = ESP_LOG_INFO;
    s_nvs_ready = 0;
}

void idf_mock_all_levels(int level)
{
    s_n_levels = 0;
    s_default_level = level;
}

int idf_mock_level(const char *tag)
{
    size_t i;
    for (i = 0; i < s_n_levels; i++) {
        if (strcmp(s_levels[i].tag, tag) == 0) {
            return s_levels[i].level;
        }
    }
    return s_default_level;
}

void esp_log_level_set(const char *tag, esp_log_level_t level)
{
    size_t i;
    if (strcmp(tag, "*") == 0) {
        s_default_level = (int)level;
        return;
    }
    for (i = 0; i < s_n_levels; i++) {
        if (strcmp(s_levels[i].tag, tag) == 0) {
            s_levels[i].level = (int)level;
            return;
        }
    }
    if (s_n_levels < sizeof(s_levels) / sizeof(s_levels[0])) {
        snprintf(s_levels[s_n_levels].tag, sizeof(s_levels[0].tag), "%s", tag);
        s_levels[s_n_levels++].level = (int)level;
    }
}

esp_log_level_t esp_log_level_get(const char *tag)
{
    return (esp_log_level_t)idf_mock_level(tag);
}

void mock_log(esp_log_level_t level, const char *tag, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;
    if ((int)level > idf_mock_level(tag)) {
        return;
    }
    n = snprintf(line, sizeof(line), "%s: ", tag);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    n = (int)strlen(line);
    if (g_idf.log_len + (size_t)n + 2 < sizeof(g_idf.log)) {
        memcpy(g_idf.log + g_idf.log_len, line, (size_t)n);
        g_idf.log_len += (size_t)n;
        g_idf.log[g_idf.log_len++] = '\n';
        g_idf.log[g_idf.log_len] = '\0';
    }
}

/* -------------------------------------------------------- clock, tasks */

int64_t esp_timer_get_time(void)
{
    return g_idf.now_us;
}

uint32_t esp_random(void)
{
    return 0x12345678u;
}

void vTaskDelay(TickType_t ticks)
{
    g_idf.last_delay_ticks = ticks;
    g_idf.now_us += (int64_t)ticks * (1000000 / configTICK_RATE_HZ);
}

struct mock_group {
    EventBits_t bits;
};
static struct mock_group s_group;

EventGroupHandle_t xEventGroupCreate(void)
{
    s_group.bits = 0;
    return &s_group;
}

void vEventGroupDelete(EventGroupHandle_t g)
{
    (void)g;
}

EventBits_t xEventGroupSetBits(EventGroupHandle_t g, EventBits_t bits)
{
    g->bits |= bits;
    return g->bits;
}

/* ----------------------------------------------------------------- MQTT */

struct mock_mqtt {
    esp_event_handler_t handler;
    void *arg;
    int next_id;
    int enqueued;
    int connected;
};
static struct mock_mqtt s_mqtt;

EventBits_t xEventGroupWaitBits(EventGroupHandle_t g, EventBits_t bits, BaseType_t clear,
                                BaseType_t all, TickType_t ticks)
{
    EventBits_t got;
    (void)all;
    if (g_idf.mqtt_answer && s_mqtt.handler != NULL) {
        esp_mqtt_event_t ev;
        memset(&ev, 0, sizeof(ev));
        if (!s_mqtt.connected) {
            s_mqtt.connected = 1;
            s_mqtt.handler(s_mqtt.arg, "MQTT_EVENTS", MQTT_EVENT_CONNECTED, &ev);
        } else if (s_mqtt.enqueued > 0) {
            ev.msg_id = s_mqtt.enqueued;
            s_mqtt.handler(s_mqtt.arg, "MQTT_EVENTS", MQTT_EVENT_PUBLISHED, &ev);
        }
    }
    got = g->bits & bits;
    if (got == 0) {
        g_idf.now_us += (int64_t)ticks * (1000000 / configTICK_RATE_HZ); /* waited in vain */
    }
    if (clear) {
        g->bits &= ~bits;
    }
    return got;
}

esp_mqtt_client_handle_t esp_mqtt_client_init(const esp_mqtt_client_config_t *cfg)
{
    memset(&s_mqtt, 0, sizeof(s_mqtt));
    s_mqtt.next_id = 41;
    g_idf.mqtt_network_timeout_ms = cfg->network.timeout_ms;
    g_idf.mqtt_cert = cfg->broker.verification.certificate;
    g_idf.mqtt_bundle = cfg->broker.verification.crt_bundle_attach != NULL;
    /* esp-mqtt logs the CONNECT at DEBUG in its task: user name = token */
    mock_log(ESP_LOG_DEBUG, "mqtt_client", "CONNECT user %s", cfg->credentials.username);
    return &s_mqtt;
}

esp_err_t esp_mqtt_client_register_event(esp_mqtt_client_handle_t c, esp_mqtt_event_id_t ev,
                                         esp_event_handler_t handler, void *arg)
{
    (void)ev;
    c->handler = handler;
    c->arg = arg;
    return ESP_OK;
}

esp_err_t esp_mqtt_client_start(esp_mqtt_client_handle_t c)
{
    (void)c;
    return ESP_OK;
}

int esp_mqtt_client_enqueue(esp_mqtt_client_handle_t c, const char *topic, const char *data, int len,
                            int qos, int retain, bool store)
{
    (void)topic;
    (void)data;
    (void)len;
    (void)qos;
    (void)retain;
    (void)store;
    c->enqueued = ++c->next_id;
    return c->enqueued;
}

esp_err_t esp_mqtt_client_stop(esp_mqtt_client_handle_t c)
{
    (void)c;
    /* worst case: the client task sits in a network wait of network.timeout_ms */
    g_idf.now_us += (int64_t)g_idf.mqtt_network_timeout_ms * 1000;
    return ESP_OK;
}

esp_err_t esp_mqtt_client_destroy(esp_mqtt_client_handle_t c)
{
    (void)c;
    return ESP_OK;
}

/* ----------------------------------------------------------------- HTTP */

struct mock_http {
    int timeout_ms;
    char headers[512];
    int answered;
};
static struct mock_http s_http;

static void http_timeout(int ms)
{
    s_http.timeout_ms = ms;
    if (g_idf.n_http_timeouts < MOCK_MAX) {
        g_idf.http_timeouts[g_idf.n_http_timeouts] = ms;
        g_idf.http_timeout_at_us[g_idf.n_http_timeouts++] = g_idf.now_us;
    }
}

static void http_block(void)
{
    if (g_idf.http_phase_takes_all) {
        g_idf.now_us += (int64_t)s_http.timeout_ms * 1000;
    }
}

esp_http_client_handle_t esp_http_client_init(const esp_http_client_config_t *cfg)
{
    memset(&s_http, 0, sizeof(s_http));
    g_idf.http_cert_pem = cfg->cert_pem;
    g_idf.http_bundle = cfg->crt_bundle_attach != NULL;
    http_timeout(cfg->timeout_ms);
    return &s_http;
}

esp_err_t esp_http_client_set_header(esp_http_client_handle_t c, const char *key, const char *value)
{
    size_t n = strlen(c->headers);
    snprintf(c->headers + n, sizeof(c->headers) - n, "%s: %s\r\n", key, value);
    return ESP_OK;
}

esp_err_t esp_http_client_set_timeout_ms(esp_http_client_handle_t c, int timeout_ms)
{
    (void)c;
    http_timeout(timeout_ms);
    return ESP_OK;
}

esp_err_t esp_http_client_open(esp_http_client_handle_t c, int write_len)
{
    (void)write_len;
    /* what esp_http_client does when it writes the request: the header block at DEBUG */
    if (idf_mock_level("HTTP_CLIENT") >= ESP_LOG_DEBUG) {
        g_idf.http_header_level_ok = 0;
    }
    mock_log(ESP_LOG_DEBUG, "HTTP_CLIENT", "Write header: %s", c->headers);
    http_block();
    return ESP_OK;
}

int esp_http_client_write(esp_http_client_handle_t c, const char *buf, int len)
{
    (void)c;
    (void)buf;
    http_block();
    return len;
}

int64_t esp_http_client_fetch_headers(esp_http_client_handle_t c)
{
    (void)c;
    http_block();
    return 16;
}

int esp_http_client_get_status_code(esp_http_client_handle_t c)
{
    (void)c;
    return g_idf.http_status;
}

int esp_http_client_read(esp_http_client_handle_t c, char *buf, int len)
{
    (void)c;
    http_block();
    if (g_idf.http_phase_takes_all) {
        if (len > 0) {
            buf[0] = '{'; /* a byte now and then, forever: a trickling peer */
        }
        return 1;
    }
    if (c->answered || len < 16) {
        return 0;
    }
    c->answered = 1;
    memcpy(buf, "{\"claims\":[]}   ", 16);
    return 16;
}

esp_err_t esp_http_client_close(esp_http_client_handle_t c)
{
    (void)c;
    return ESP_OK;
}

esp_err_t esp_http_client_cleanup(esp_http_client_handle_t c)
{
    (void)c;
    return ESP_OK;
}

esp_err_t esp_crt_bundle_attach(void *conf)
{
    (void)conf;
    return ESP_OK;
}

/* ------------------------------------------------------------------ NVS */


esp_err_t nvs_flash_init_partition(const char *label)
{
    (void)label;
    g_idf.n_plain_init++;
    s_nvs_ready = 1;
    return ESP_OK;
}

esp_err_t nvs_flash_erase_partition(const char *label)
{
    (void)label;
    g_idf.n_erase++;
    return ESP_OK;
}

static nvs_sec_scheme_t s_scheme;

nvs_sec_scheme_t *nvs_flash_get_default_security_scheme(void)
{
    return g_idf.nvs_scheme_present ? &s_scheme : NULL;
}

esp_err_t nvs_flash_read_security_cfg_v2(nvs_sec_scheme_t *scheme, nvs_sec_cfg_t *cfg)
{
    (void)scheme;
    g_idf.n_read_cfg++;
    if (g_idf.nvs_read_cfg_err != ESP_OK) {
        return g_idf.nvs_read_cfg_err;
    }
    memset(cfg->eky, 0xA5, sizeof(cfg->eky));
    memset(cfg->tky, 0x5A, sizeof(cfg->tky));
    return ESP_OK;
}

esp_err_t nvs_flash_secure_init_partition(const char *label, nvs_sec_cfg_t *cfg)
{
    g_idf.n_secure_init++;
    snprintf(g_idf.secure_init_label, sizeof(g_idf.secure_init_label), "%s", label);
    g_idf.secure_init_key0 = cfg->eky[0];
    s_nvs_ready = 1;
    return ESP_OK;
}

esp_err_t nvs_open_from_partition(const char *part, const char *ns, nvs_open_mode_t mode, nvs_handle_t *h)
{
    (void)part;
    (void)ns;
    (void)mode;
    *h = 1;
    return s_nvs_ready ? ESP_OK : ESP_ERR_NOT_FOUND;
}

esp_err_t nvs_get_str(nvs_handle_t h, const char *key, char *out, size_t *len)
{
    const char *v = strcmp(key, "token") == 0 ? g_idf.nvs_token : strcmp(key, "secret") == 0 ? g_idf.nvs_secret : NULL;
    (void)h;
    if (v == NULL) {
        return ESP_ERR_NVS_NOT_FOUND;
    }
    if (strlen(v) + 1 > *len) {
        return ESP_ERR_INVALID_ARG;
    }
    memcpy(out, v, strlen(v) + 1);
    *len = strlen(v) + 1;
    return ESP_OK;
}

void nvs_close(nvs_handle_t h)
{
    (void)h;
}

/* ----------------------------------------------------------------- GPIO */

esp_err_t gpio_config(const gpio_config_t *cfg)
{
    g_idf.n_gpio_config++;
    g_idf.gpio_mask = cfg->pin_bit_mask;
    return ESP_OK;
}

int gpio_get_level(gpio_num_t pin)
{
    (void)pin;
    return 1;
}
