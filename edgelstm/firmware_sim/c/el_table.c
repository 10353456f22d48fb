#include "el_table.h"

void el_table(const int8_t table[256], const int8_t *x, int8_t *y, int32_t n) {
    for (int32_t i = 0; i < n; i++) y[i] = table[(uint8_t)x[i]];
}
