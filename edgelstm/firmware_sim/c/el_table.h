/* int8 -> int8 elementwise ops (LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU, ...): the generator
 * stores the 256 outputs edgelstm's prepare step computed, indexed by the input byte. */
#ifndef EL_TABLE_H
#define EL_TABLE_H
#include "el_common.h"

void el_table(const int8_t table[256], const int8_t *x, int8_t *y, int32_t n);

#endif
