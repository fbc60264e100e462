#ifndef NVS_MOCK_H
#define NVS_MOCK_H
#include <stddef.h>
#include <stdint.h>
#include "idf_mock.h"
typedef uint32_t nvs_handle_t;
typedef enum { NVS_READONLY, NVS_READWRITE } nvs_open_mode_t;
esp_err_t nvs_open_from_partition(const char *part, const char *ns, nvs_open_mode_t mode, nvs_handle_t *h);
esp_err_t nvs_get_str(nvs_handle_t h, const char *key, char *out, size_t *len);
void nvs_close(nvs_handle_t h);
#endif
