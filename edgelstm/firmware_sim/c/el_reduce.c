#include "el_reduce.h"

/* Advances a multi-index over `w`; returns the change of the flat offset, or 0 with *done set. */
static int32_t el_walk_next(const el_walk *w, int32_t *idx, int *done) {
    int32_t delta = 0;
    for (int32_t a = w->ndim - 1; a >= 0; a--) {
        idx[a]++;
        delta += w->stride[a];
        if (idx[a] < w->shape[a]) return delta;
        delta -= w->stride[a] * w->shape[a];
        idx[a] = 0;
    }
    *done = 1;
    return 0;
}

void el_reduce(const el_reduce_params *p, const int8_t *x, int8_t *y) {
    int32_t oidx[EL_MAX_DIMS] = {0};
    int32_t base = 0, k = 0;
    int odone = 0;
    while (!odone) {
        int32_t iidx[EL_MAX_DIMS] = {0};
        int32_t off = base;
        int idone = p->n_reduced == 0;
        int32_t acc = p->is_max ? -128 : 0;
        uint32_t sum = 0;
        while (!idone) {
            const int32_t v = x[off];
            if (p->is_max) acc = v > acc ? v : acc;
            else sum += (uint32_t)v;
            off += el_walk_next(&p->inner, iidx, &idone);
        }
        if (!p->is_max) {
            if (p->n_reduced == 0) {
                acc = 0;  /* the reference leaves an empty mean at 0 */
            } else {
                const int32_t shifted = (int32_t)(sum - (uint32_t)p->zp_in * (uint32_t)p->n_reduced);
                acc = el_sat8(el_wrap_add(el_mbqm(shifted, p->mult, p->shift), p->zp_out));
            }
        }
        y[k++] = (int8_t)acc;
        base += el_walk_next(&p->outer, oidx, &odone);
    }
}
