/* Data movement: RESHAPE, SQUEEZE, EXPAND_DIMS, STRIDED_SLICE, SLICE, TRANSPOSE, REVERSE_V2 and
 * each input of CONCATENATION are one strided copy of int8 elements; the generator derives the
 * strides (negative for a reversal) from edgelstm's own movement kernels. */
#ifndef EL_MOVE_H
#define EL_MOVE_H
#include "el_common.h"

typedef struct {
    int32_t ndim;
    int32_t shape[EL_MAX_DIMS];
    int32_t src_stride[EL_MAX_DIMS];
    int32_t dst_stride[EL_MAX_DIMS];
    int32_t src_offset, dst_offset;
} el_copy_params;

void el_copy(const el_copy_params *p, const int8_t *src, int8_t *dst);

#endif
