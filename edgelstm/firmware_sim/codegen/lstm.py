"""UNIDIRECTIONAL_SEQUENCE_LSTM -> el_lstm (c/el_lstm.c): TFLite Micro's integer LSTM."""
from __future__ import annotations

import numpy as np

from ... import fixedpoint as fp
from ... import lstm_shared as ls
from ...ops.lstm import TFLMLSTM
from .emit import Lowering


def lower_lstm(ctx: Lowering, k: TFLMLSTM) -> None:
    rec = k.record
    gp, cell, hid = rec.gates, rec.cell, rec.hidden
    op = k.op
    x_i, h_i, c_i, y_i = op.inputs[ls.INPUT], op.inputs[ls.OUTPUT_STATE], op.inputs[ls.CELL_STATE], op.outputs[0]
    ctx.check_int8(k, (x_i, y_i))
    # The C kernel evaluates TFLM's interpolated sigmoid/tanh directly instead of 65,536-entry
    # tables; check that the record's tables are exactly those functions.
    tanh_mult, tanh_shift = hid.tanh_c_mult, hid.tanh_c_shift
    if not (np.array_equal(rec.activations.sigmoid, fp.lut_table("logistic"))
            and np.array_equal(rec.activations.tanh, fp.lut_table("tanh"))
            and np.array_equal(hid.tanh_c, fp.lut_table("tanh", tanh_mult, tanh_shift))):
        raise k.fail("internal: the LSTM's activation tables are not TFLite Micro's interpolated ones")
    wx = np.ascontiguousarray(gp.wx_t.T)  # [4 * n_cell, n_in]: one dot product per gate row
    wh = np.ascontiguousarray(gp.wh_t.T)
    wide = not all(a.size == 0 or (a.min() >= -128 and a.max() <= 127) for a in (wx, wh))
    wtype = "int16_t" if wide else "int8_t"
    base = ctx.base(k)
    wx_n = ctx.shared_array(f"op{op.index}_wx", wx, wtype)
    wh_n = ctx.shared_array(f"op{op.index}_wh", wh, wtype)
    bx_n = ctx.shared_array(f"op{op.index}_bx", gp.bx, "int32_t")
    bh_n = ctx.shared_array(f"op{op.index}_bh", gp.bh, "int32_t")
    x_shape = ctx.shape(x_i)
    n_steps = x_shape[0] if k.time_major else x_shape[1]
    fields = {
        "n_batch": k.n_batch, "n_steps": n_steps, "n_in": k.n_in, "n_cell": k.n_cell,
        "time_major": int(k.time_major), "wide_weights": int(wide), "wx": wx_n, "wh": wh_n,
        "bx": bx_n, "bh": bh_n, "mx": gp.x_mult, "sx": gp.x_shift, "mh": gp.h_mult, "sh": gp.h_shift,
        "fc_m": cell.fc_mult, "fc_s": cell.fc_shift, "ig_m": cell.ig_mult, "ig_s": cell.ig_shift,
        "cell_clipping": int(cell.clipping), "cell_clip": cell.clip, "hid_m": hid.mult, "hid_s": hid.shift, "hid_zp": hid.zp,
        "tanh_c_mult": tanh_mult, "tanh_c_shift": tanh_shift,
    }
    ps = ctx.em.struct(base, "el_lstm_params", fields)
    ctx.add(k, f"el_lstm(&{ps}, {{t{x_i}}}, {{t{h_i}}}, {{t{c_i}}}, {{t{y_i}}}, (int16_t *){{scratch}});",
            (x_i, h_i, c_i), (y_i,), scratch=4 * k.n_cell * 2)
