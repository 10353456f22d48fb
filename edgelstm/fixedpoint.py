"""Fixed-point primitives of TFLite's integer kernels, as tiny Numba functions.

Each function computes exactly one named operation of gemmlowp's `fixedpoint.h` or of TFLite's
`quantization_util`/`common.h`, on Python/Numba integers (int64 in Numba), with the C++ wrap-around
and saturation made explicit. They are callable from Python as well as from other Numba code, and
each one is property-tested against an exact big-integer model in tests/test_fixedpoint.py.

Naming: `srdhm` = SaturatingRoundingDoublingHighMul, `rdbp` = RoundingDivideByPOT,
`mbqm` = MultiplyByQuantizedMultiplier (double rounding, TFLite's default build).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

INT16_MIN, INT16_MAX = -32768, 32767
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

_jit = njit(cache=True, nogil=True)


# -- integer width helpers ---------------------------------------------------------------------
@_jit
def wrap16(x):
    """Two's-complement wrap to int16 (a C `static_cast<int16_t>`)."""
    return ((x + 32768) & 0xFFFF) - 32768


@_jit
def wrap32(x):
    """Two's-complement wrap to int32 (a C `static_cast<int32_t>` / int32 overflow)."""
    return ((x + 2147483648) & 0xFFFFFFFF) - 2147483648


@_jit
def sat16(x):
    return min(max(x, -32768), 32767)


@_jit
def sat8(x):
    return min(max(x, -128), 127)


# -- float -> integer conversions --------------------------------------------------------------
@_jit
def round_half_away(v):
    """C `round()` on a double (std::round; on a float32 value also `roundf`): nearest integer,
    halves away from zero, exact for every double. NaN and infinities come back unchanged; unlike
    C, -0.0 comes back as +0.0 (no caller can tell: the result is converted to an integer, or
    added to one)."""
    a = abs(v)
    f = np.floor(a)  # a float: math.floor gives an int64 in Numba, which overflows beyond 2^63
    if a - f >= 0.5:  # a - floor(a) is exact, unlike the tempting floor(a + 0.5)
        f += 1.0
    return f if v >= 0 else -f


@_jit
def x86_double_to_int32(v):
    """`static_cast<int32_t>` of a double as x86 executes it (cvttsd2si): truncation toward zero,
    and where that does not fit int32 (or for NaN) INT32_MIN, the "integer indefinite" result; it
    does not saturate."""
    if v > -2147483649.0 and v < 2147483648.0:  # false for NaN
        return int(v)
    return -2147483648


_F32_INV_LN2 = np.float32(1.0) / np.float32(math.log(2.0))  # 1.0f / std::log(2.0f): 0x3fb8aa3b


def checked_log2(x: float) -> tuple[int, float]:
    """TFLite's CheckedLog2(float x) for x > 0: (the exponent, the fractional part it measures).

    The log is taken in float32, not double: logf(x) times float32(1 / ln 2), rounded to float32,
    then roundf (halves away from zero). Near 2^(k + 1/2) that is not round(math.log2(x)): the
    float32 nearest 2^-13.5 gets -13 (double log2 says -13.500000025), the next float32 above
    2^-12.5 gets exactly -12.5 and so -13 (double -12.4999999, and Python's round would give -12).

    logf is the double log rounded to float32. glibc's logf, which the tflite-micro build calls, is
    not correctly rounded everywhere; over every float32 in [2^-45, 2^5) the exponent comes out
    different at one value only, 0x1.6a09f6p-31 (glibc: -31, here -30), where the LSTM's tanh(c)
    input is 0 for both (tests/test_tflm.py). The caller applies its own tolerance to the
    fractional part (TFLM's |frac| < 1e-3f, evaluated in float32)."""
    v = np.float32(np.float32(math.log(float(np.float32(x)))) * _F32_INV_LN2)
    r = np.float32(round_half_away(float(v)))
    return int(r), float(np.float32(v - r))  # v - r is exact in float32: r is v's nearest integer


# -- gemmlowp core -----------------------------------------------------------------------------
@_jit
def srdhm32(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32: round(a*b / 2^31), ties toward +inf;
    the one overflowing case (INT32_MIN * INT32_MIN) saturates to INT32_MAX."""
    if a == -2147483648 and b == -2147483648:
        return 2147483647
    return (a * b + (1 << 30)) >> 31


@_jit
def srdhm16(a, b):
    """The int16 SaturatingRoundingDoublingHighMul: round(a*b / 2^15), ties toward +inf."""
    if a == -32768 and b == -32768:
        return 32767
    return (a * b + (1 << 14)) >> 15


@_jit
def rdbp(x, exponent):
    """RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@_jit
def sat_shift_left16(x, exponent):
    """gemmlowp SaturatingRoundingMultiplyByPOT<+exponent> on int16: saturating left shift."""
    threshold = (1 << (15 - exponent)) - 1
    if x > threshold:
        return 32767
    if x < -threshold:
        return -32768
    return wrap16(x << exponent)


@_jit
def sat_shift_left32(x, exponent):
    """gemmlowp SaturatingRoundingMultiplyByPOT<+exponent> on int32: saturating left shift."""
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


@_jit
def rounding_half_sum16(a, b):
    """gemmlowp RoundingHalfSum for int16: (a + b + sign(a + b)) / 2, truncating."""
    s = a + b
    sign = 1 if s >= 0 else -1
    q = s + sign
    # C division truncates toward zero
    return wrap16(q // 2 if q >= 0 else -((-q) // 2))


@_jit
def rounding_half_sum32(a, b):
    """gemmlowp RoundingHalfSum for int32: (a + b + sign(a + b)) / 2, truncating. gemmlowp sums in
    int64, and the half of two int32 values always fits int32, so nothing wraps."""
    s = a + b
    sign = 1 if s >= 0 else -1
    q = s + sign
    # C division truncates toward zero
    return q // 2 if q >= 0 else -((-q) // 2)


@_jit
def add_sat16(a, b):
    return sat16(a + b)


# -- TFLite requantization ---------------------------------------------------------------------
@_jit
def mbqm(x, multiplier, shift):
    """MultiplyByQuantizedMultiplier, the double-rounding form TFLite builds by default:
    RDBP(SRDHM(x * 2^max(shift,0), M), max(-shift,0)), with the left shift done in int32."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rdbp(srdhm32(wrap32(x * (1 << left)), multiplier), right)


@_jit
def quantize_multiplier(d):
    """TFLite QuantizeMultiplier(double): (M, shift) with d ~= M * 2^(shift - 31), M in [2^30, 2^31).

    Uses frexp and round-half-away-from-zero exactly as the C++ does.
    """
    if d == 0.0:
        return 0, 0
    q, e = math.frexp(d)
    q_fixed = int(round_half_away(q * 2147483648.0))
    if q_fixed == 2147483648:
        q_fixed //= 2
        e += 1
    if e < -31:
        e = 0
        q_fixed = 0
    return q_fixed, e


# -- gemmlowp exp, 1/(1+x), logistic, tanh (int16 and int32 raw values) -------------------------
# gemmlowp's constants as int32 raw values: e^(-1/8) and 1/3 in Q0.31, the Newton-Raphson seeds 48/17
# and -32/17 in Q2.29, and e^(-2^k) for k = -2..4 (exp's barrel shifter) in Q0.31.
_EXP_M1_8_32 = 1895147668
_ONE_THIRD_32 = 715827883
_SEED_48_17_32 = 1515870810
_SEED_M32_17_32 = -1010580540
_BARREL_32 = np.array([1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242], dtype=np.int64)


def _rescale_constant16(c32: int) -> int:
    """GEMMLOWP_CHECKED_FIXEDPOINT_CONSTANT for int16: the int32 constant, RDBP by 16."""
    return int(rdbp(c32, 16))


# ... and as int16 raw values (Q0.15, seeds in Q2.13)
_EXP_M1_8_16 = _rescale_constant16(_EXP_M1_8_32)
_ONE_THIRD_16 = _rescale_constant16(_ONE_THIRD_32)
_SEED_48_17_16 = _rescale_constant16(_SEED_48_17_32)
_SEED_M32_17_16 = _rescale_constant16(_SEED_M32_17_32)
_BARREL_16 = np.array([_rescale_constant16(int(c)) for c in _BARREL_32], dtype=np.int64)


@_jit
def exp_on_interval_m1_4_0_16(a):
    """gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl, int16 Q0.15."""
    x = wrap16(a + 4096)  # + 1/8
    x2 = srdhm16(x, x)
    x3 = srdhm16(x2, x)
    x4 = srdhm16(x2, x2)
    x4_over_4 = rdbp(x4, 2)
    poly = rdbp(wrap16(srdhm16(wrap16(x4_over_4 + x3), _ONE_THIRD_16) + x2), 1)
    return add_sat16(_EXP_M1_8_16, srdhm16(_EXP_M1_8_16, wrap16(x + poly)))


@_jit
def exp_on_interval_m1_4_0_32(a):
    """gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl, int32 Q0.31."""
    x = wrap32(a + (1 << 28))  # + 1/8
    x2 = srdhm32(x, x)
    x3 = srdhm32(x2, x)
    x4 = srdhm32(x2, x2)
    x4_over_4 = rdbp(x4, 2)
    poly = rdbp(wrap32(srdhm32(wrap32(x4_over_4 + x3), _ONE_THIRD_32) + x2), 1)
    # the 32-bit instantiation adds without saturation (AddSaturatingIf16Bit)
    return wrap32(_EXP_M1_8_32 + srdhm32(_EXP_M1_8_32, wrap32(x + poly)))


@_jit
def exp_on_negative_values16(a, integer_bits):
    """gemmlowp exp_on_negative_values for FixedPoint<int16, integer_bits>; result Q0.15."""
    frac_bits = 15 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    a_mod = wrap16((a & (one_quarter - 1)) - one_quarter)
    result = exp_on_interval_m1_4_0_16(sat_shift_left16(a_mod, integer_bits) if integer_bits > 0 else a_mod)
    remainder = wrap16(a_mod - a)
    for k in range(7):
        exponent = k - 2
        if integer_bits > exponent:
            if remainder & (1 << (frac_bits + exponent)):
                result = srdhm16(result, _BARREL_16[k])
    if integer_bits > 5:
        clamp = -(1 << (20 - integer_bits))
        if a < clamp:
            result = 0
    if a == 0:
        result = 32767
    return result


@_jit
def exp_on_negative_values32(a, integer_bits):
    """gemmlowp exp_on_negative_values for FixedPoint<int32, integer_bits>; result Q0.31."""
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    a_mod = wrap32((a & (one_quarter - 1)) - one_quarter)
    result = exp_on_interval_m1_4_0_32(sat_shift_left32(a_mod, integer_bits) if integer_bits > 0 else a_mod)
    remainder = wrap32(a_mod - a)
    for k in range(7):
        exponent = k - 2
        if integer_bits > exponent:
            if remainder & (1 << (frac_bits + exponent)):
                result = srdhm32(result, _BARREL_32[k])
    if integer_bits > 5:
        if a < -(1 << (36 - integer_bits)):
            result = 0
    if a == 0:
        result = INT32_MAX
    return result


@_jit
def _newton_reciprocal16(half_denominator):
    """The three Newton-Raphson steps shared by gemmlowp's 1/(1+x) and (1-x)/(1+x); Q2.13 result."""
    x = wrap16(_SEED_48_17_16 + srdhm16(half_denominator, _SEED_M32_17_16))
    for _ in range(3):
        hdx = srdhm16(half_denominator, x)
        one_minus = wrap16(8192 - hdx)
        x = wrap16(x + sat_shift_left16(srdhm16(x, one_minus), 2))
    return x


@_jit
def _newton_reciprocal32(half_denominator):
    """The same three Newton-Raphson steps on int32; Q2.29 result."""
    x = wrap32(_SEED_48_17_32 + srdhm32(half_denominator, _SEED_M32_17_32))
    for _ in range(3):
        hdx = srdhm32(half_denominator, x)
        one_minus = wrap32((1 << 29) - hdx)
        x = wrap32(x + sat_shift_left32(srdhm32(x, one_minus), 2))
    return x


@_jit
def one_over_one_plus_x16(a):
    """gemmlowp one_over_one_plus_x_for_x_in_0_1, int16."""
    x = _newton_reciprocal16(rounding_half_sum16(a, 32767))
    return sat_shift_left16(x, 1)


@_jit
def one_over_one_plus_x32(a):
    """gemmlowp one_over_one_plus_x_for_x_in_0_1, int32 (Q0.31 in and out)."""
    x = _newton_reciprocal32(rounding_half_sum32(a, INT32_MAX))
    return sat_shift_left32(x, 1)


@_jit
def one_minus_x_over_one_plus_x16(a):
    """gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1, int16."""
    x = _newton_reciprocal16(rounding_half_sum16(a, 32767))
    return sat_shift_left16(wrap16(x - 8192), 2)


@_jit
def one_minus_x_over_one_plus_x32(a):
    """gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1, int32 (Q0.31 in and out)."""
    x = _newton_reciprocal32(rounding_half_sum32(a, INT32_MAX))
    return sat_shift_left32(wrap32(x - (1 << 29)), 2)


@_jit
def logistic16(a, integer_bits):
    """gemmlowp logistic(FixedPoint<int16, integer_bits>) -> Q0.15."""
    if a == 0:
        return 16384
    abs_a = a if a > 0 else wrap16(-a)
    pos = one_over_one_plus_x16(exp_on_negative_values16(wrap16(-abs_a), integer_bits))
    return pos if a > 0 else wrap16(32767 - pos)


@_jit
def tanh16(a, integer_bits):
    """gemmlowp tanh(FixedPoint<int16, integer_bits>) -> Q0.15."""
    if a == 0:
        return 0
    n = a if a < 0 else wrap16(-a)
    # ExactMulByPot<1>: same raw value read with one more integer bit, i.e. exp(2n)
    t = one_minus_x_over_one_plus_x16(exp_on_negative_values16(n, integer_bits + 1))
    return wrap16(-t) if a < 0 else t


@_jit
def logistic32(a, integer_bits):
    """gemmlowp logistic(FixedPoint<int32, integer_bits>) -> Q0.31 (TFLite Micro's int8 LOGISTIC)."""
    if a == 0:
        return 1 << 30
    abs_a = a if a > 0 else wrap32(-a)
    pos = one_over_one_plus_x32(exp_on_negative_values32(wrap32(-abs_a), integer_bits))
    return pos if a > 0 else wrap32(INT32_MAX - pos)


@_jit
def tanh32(a, integer_bits):
    """gemmlowp tanh(FixedPoint<int32, integer_bits>) -> Q0.31 (TFLite Micro's int8 TANH)."""
    if a == 0:
        return 0
    n = a if a < 0 else wrap32(-a)
    t = one_minus_x_over_one_plus_x32(exp_on_negative_values32(n, integer_bits + 1))
    return wrap32(-t) if a < 0 else t


@_jit
def _fill_logistic(out, integer_bits):
    for i in range(65536):
        out[i] = logistic16(i - 32768, integer_bits)


@_jit
def _fill_tanh(out, integer_bits):
    for i in range(65536):
        out[i] = tanh16(i - 32768, integer_bits)


_TABLES: dict[tuple[str, int], np.ndarray] = {}


def logistic_table(integer_bits: int = 3) -> np.ndarray:
    """All 65,536 outputs of `logistic16`, indexed by raw input + 32768 (int16)."""
    key = ("logistic", integer_bits)
    if key not in _TABLES:
        t = np.empty(65536, dtype=np.int16)
        _fill_logistic(t, integer_bits)
        t.setflags(write=False)
        _TABLES[key] = t
    return _TABLES[key]


def tanh_table(integer_bits: int) -> np.ndarray:
    """All 65,536 outputs of `tanh16` for the given integer bits (0..6), indexed by raw + 32768."""
    if not 0 <= integer_bits <= 6:
        raise ValueError(f"gemmlowp tanh tables exist for 0..6 integer bits, not {integer_bits}")
    key = ("tanh", integer_bits)
    if key not in _TABLES:
        t = np.empty(65536, dtype=np.int16)
        _fill_tanh(t, integer_bits)
        t.setflags(write=False)
        _TABLES[key] = t
    return _TABLES[key]



# -- TFLite Micro's int16 sigmoid/tanh: a 256-entry table with linear interpolation ----------------
# sigmoid(i / 24) in Q0.16 for i = 0..255, as tabulated in TFLite's kernels/internal/common.h
# (sigmoid_table_uint16). The values are data, not a formula: rounding 65536 * sigmoid(i / 24)
# misses 44 of them by one, so they are reproduced as published.
SIGMOID_TABLE_UINT16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432,
    42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475,
    49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485,
    55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519,
    59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036,
    62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405,
    64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179,
    65194, 65208, 65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337,
    65345, 65352, 65360, 65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
    65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517,
    65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525, 65525,
    65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533,
    65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535], dtype=np.int64)
SIGMOID_TABLE_UINT16.setflags(write=False)


@_jit
def lut_scale_input16(x, multiplier, shift):
    """The input scaling of TFLite Micro's int16 LUT sigmoid/tanh: multiplier 0 means a power-of-two
    scale and stands for 3 << shift with no shift; otherwise (x * multiplier + half) >> shift.
    The 3 maps [-8, 8) in Q3.12 onto the table's [-10.7, 10.7)."""
    if multiplier == 0:
        return x * (3 << shift)
    half = (1 << (shift - 1)) if shift > 0 else 0
    return (x * multiplier + half) >> shift


@_jit
def lut_logistic16(x, multiplier, shift):
    """TFLite Micro's reference_integer_ops::Logistic on one int16: Q3.12 (after the input scaling)
    -> Q0.15 by interpolating SIGMOID_TABLE_UINT16 with 9 fractional bits of |v|, mirrored for
    negative v; all in uint32 as the C++ does. sigmoid(-large) comes out as 1, not 0."""
    v = lut_scale_input16(x, multiplier, shift)
    a = abs(v)
    uh = a >> 9
    if uh >= 255:
        r = 0x7FFF << 10
    else:
        ua = SIGMOID_TABLE_UINT16[uh]
        r = (ua << 9) + (a & 0x1FF) * (SIGMOID_TABLE_UINT16[uh + 1] - ua)
    r = r + (1 << 9) if v >= 0 else (1 << 25) - r + (1 << 9) - 1
    return wrap16(r >> 10)


@_jit
def lut_tanh16(x, multiplier, shift):
    """TFLite Micro's reference_integer_ops::Tanh on one int16: tanh(y) = 2 sigmoid(2y) - 1 read off
    the same table with 8 fractional bits, result Q0.15 (int32 arithmetic shift at the end)."""
    v = lut_scale_input16(x, multiplier, shift)
    a = abs(v)
    uh = a >> 8
    if uh >= 255:
        r = 0xFFFF << 8
    else:
        ua = SIGMOID_TABLE_UINT16[uh]
        r = (ua << 8) + (a & 0xFF) * (SIGMOID_TABLE_UINT16[uh + 1] - ua)
    r = r - (1 << 23) + (1 << 7) if v >= 0 else -r + (1 << 23) + (1 << 7) - 1
    return wrap16(r >> 8)


@_jit
def _fill_lut(out, tanh, multiplier, shift):
    for i in range(65536):
        if tanh:
            out[i] = lut_tanh16(i - 32768, multiplier, shift)
        else:
            out[i] = lut_logistic16(i - 32768, multiplier, shift)


def lut_table(kind: str, multiplier: int = 0, shift: int = 0) -> np.ndarray:
    """All 65,536 outputs of `lut_logistic16` (kind "logistic") or `lut_tanh16` ("tanh") for one
    input scaling, indexed by raw input + 32768 (int16)."""
    if kind not in ("logistic", "tanh"):
        raise ValueError(f"kind must be 'logistic' or 'tanh', not {kind!r}")
    key = ("lut_" + kind, multiplier, shift)
    if key not in _TABLES:
        t = np.empty(65536, dtype=np.int16)
        _fill_lut(t, kind == "tanh", multiplier, shift)
        t.setflags(write=False)
        _TABLES[key] = t
    return _TABLES[key]
