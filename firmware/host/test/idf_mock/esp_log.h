#ifndef ESP_LOG_MOCK_H
#define ESP_LOG_MOCK_H
#include "idf_mock.h"
typedef enum { ESP_LOG_NONE, ESP_LOG_ERROR, ESP_LOG_WARN, ESP_LOG_INFO, ESP_LOG_DEBUG, ESP_LOG_VERBOSE } esp_log_level_t;
void esp_log_level_set(const char *tag, esp_log_level_t level);
esp_log_level_t esp_log_level_get(const char *tag);
void mock_log(esp_log_level_t level, const char *tag, const char *fmt, ...);
#define ESP_LOGE(tag, ...) mock_log(ESP_LOG_ERROR, tag, __VA_ARGS__)
#define ESP_LOGW(tag, ...) mock_log(ESP_LOG_WARN, tag, __VA_ARGS__)
#define ESP_LOGI(tag, ...) mock_log(ESP_LOG_INFO, tag, __VA_ARGS__)
#define ESP_LOGD(tag, ...) mock_log(ESP_LOG_DEBUG, tag, __VA_ARGS__)
#endif
