"""Each fixed-point primitive against an exact big-integer (or exact rational) model of its definition."""
from fractions import Fraction
import math

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from edgelstm import fixedpoint as fp

i32 = st.integers(-(2**31), 2**31 - 1)
i16 = st.integers(-(2**15), 2**15 - 1)


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    """Compile the Numba functions before Hypothesis times its examples: with a cold Numba cache
    (a fresh checkout, or any edit of fixedpoint.py) the first call compiles, which alone can
    exceed Hypothesis' 200 ms deadline."""
    for name in ("srdhm32", "srdhm16", "rdbp", "sat_shift_left16", "sat_shift_left32", "rounding_half_sum16",
                 "rounding_half_sum32", "exp_on_interval_m1_4_0_16", "exp_on_interval_m1_4_0_32",
                 "exp_on_negative_values16", "exp_on_negative_values32", "one_over_one_plus_x16",
                 "one_over_one_plus_x32", "one_minus_x_over_one_plus_x16", "tanh16",
                 "one_minus_x_over_one_plus_x32", "logistic32", "tanh32", "lut_scale_input16", "lut_logistic16",
                 "lut_tanh16"):
        fn = getattr(fp, name)
        fn(*[-1, 1, 1][:fn.py_func.__code__.co_argcount])
    fp.mbqm(1, 1 << 30, 0)
    for name in ("quantize_multiplier", "round_half_away", "x86_double_to_int32"):
        getattr(fp, name)(0.5)
    for name in ("wrap32", "wrap16", "sat16", "sat8"):
        getattr(fp, name)(1)


def c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def round_half_away(fr: Fraction) -> int:
    n = math.floor(abs(fr) + Fraction(1, 2))
    return n if fr >= 0 else -n


def ref_srdhm(a: int, b: int, bits: int) -> int:
    lo = -(2 ** (bits - 1))
    if a == lo and b == lo:
        return 2 ** (bits - 1) - 1
    ab = a * b
    nudge = (1 << (bits - 2)) if ab >= 0 else 1 - (1 << (bits - 2))
    return c_div(ab + nudge, 1 << (bits - 1))


def ref_rdbp(x: int, e: int) -> int:
    return round_half_away(Fraction(x, 2**e))


def wrap(x: int, bits: int) -> int:
    m = 1 << bits
    return (x + m // 2) % m - m // 2


@given(i32, i32)
@example(-(2**31), -(2**31))
@example(-(2**31), 2**31 - 1)
@example(2**31 - 1, 2**31 - 1)
@example(1 << 30, -1)
def test_srdhm32(a, b):
    assert fp.srdhm32(a, b) == ref_srdhm(a, b, 32)


@given(i16, i16)
@example(-32768, -32768)
@example(-32768, 32767)
def test_srdhm16(a, b):
    assert fp.srdhm16(a, b) == ref_srdhm(a, b, 16)


@given(i32, st.integers(0, 31))
@example(-3, 1)  # -1.5: ties away from zero -> -2
@example(3, 1)
@example(-(2**31), 31)
@example(2**31 - 1, 31)
def test_rdbp(x, e):
    assert fp.rdbp(x, e) == ref_rdbp(x, e)


@given(i32, st.integers(2**30, 2**31 - 1), st.integers(-31, 30))
@example(-(2**31), 2**31 - 1, 0)
@example(2**31 - 1, 2**30, 1)
def test_mbqm_double_rounding(x, m, shift):
    left, right = max(shift, 0), max(-shift, 0)
    expected = ref_rdbp(ref_srdhm(wrap(x * 2**left, 32), m, 32), right)
    assert fp.mbqm(x, m, shift) == expected


@given(st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False))
@example(2.0**-15)
@example(1.0)
@example(0.99999999999999)
def test_quantize_multiplier(d):
    m, shift = fp.quantize_multiplier(d)
    # exact model: d = q * 2^e with q in [0.5, 1); M = round_half_away(q * 2^31)
    fr = Fraction(d)
    e = math.floor(math.log2(d)) + 1
    while fr / Fraction(2) ** e >= 1:
        e += 1
    while fr / Fraction(2) ** e < Fraction(1, 2):
        e -= 1
    want_m = round_half_away(fr / Fraction(2) ** e * 2**31)
    want_e = e
    if want_m == 2**31:
        want_m //= 2
        want_e += 1
    if want_e < -31:  # too small for an int32 multiplier: TFLite flushes to zero
        want_m, want_e = 0, 0
    assert (m, shift) == (want_m, want_e)
    assert m == 0 or 2**30 <= m < 2**31


def test_quantize_multiplier_zero_and_tiny():
    assert fp.quantize_multiplier(0.0) == (0, 0)
    assert fp.quantize_multiplier(2.0**-40) == (0, 0)  # exponent below -31 flushes to zero


@given(st.floats(allow_nan=False))
@example(0.5)
@example(-2.5)
@example(0.49999999999999994)  # floor(x + 0.5) would give 1
@example(4503599627370495.5)  # 2^52 - 0.5: x + 0.5 is not exact in double
@example(1e300)  # beyond int64, where Numba's math.floor would overflow
@example(-0.0)
def test_round_half_away(v):
    got = fp.round_half_away(v)
    if math.isinf(v):
        assert got == v
    else:
        assert got == round_half_away(Fraction(v))


def test_round_half_away_nan():
    assert math.isnan(fp.round_half_away(math.nan))


@given(st.floats())
@example(2147483647.9)  # truncates into range
@example(2147483648.0)
@example(-2147483648.9)
@example(-2147483649.0)
@example(math.nan)
@example(-math.inf)
def test_x86_double_to_int32(v):
    t = math.trunc(v) if math.isfinite(v) else None
    want = t if t is not None and fp.INT32_MIN <= t <= fp.INT32_MAX else fp.INT32_MIN
    assert fp.x86_double_to_int32(v) == want


@given(i16, st.integers(0, 15))
def test_sat_shift_left16(x, e):
    want = max(-32768, min(32767, x * 2**e))
    assert fp.sat_shift_left16(x, e) == want


@given(i32, st.integers(0, 31))
@example(-(2**31), 0)
@example(-(2**30), 1)  # exactly INT32_MIN after the shift
@example(2**30, 1)
@example(-1, 31)
def test_sat_shift_left32(x, e):
    want = max(-(2**31), min(2**31 - 1, x * 2**e))
    assert fp.sat_shift_left32(x, e) == want


@given(i16, i16)
def test_rounding_half_sum16(a, b):
    s = a + b
    assert fp.rounding_half_sum16(a, b) == wrap(c_div(s + (1 if s >= 0 else -1), 2), 16)


@given(i32, i32)
@example(2**31 - 1, 2**31 - 1)
@example(-(2**31), -(2**31))
@example(-1, 0)
def test_rounding_half_sum32(a, b):
    s = a + b
    want = c_div(s + (1 if s >= 0 else -1), 2)
    assert fp.rounding_half_sum32(a, b) == want
    assert -(2**31) <= want < 2**31  # gemmlowp's int64 sum: the half always fits int32


@given(st.integers(-8192, -1))
def test_exp_on_interval_matches_exp(a):
    # input in [-1/4, 0) as Q0.15; gemmlowp's polynomial is accurate to a few LSB
    got = fp.exp_on_interval_m1_4_0_16(a)
    assert abs(got - math.exp(a / 32768) * 32768) <= 3


# gemmlowp's exp polynomial is e^(-1/8) * (degree-4 Taylor series of e^x) at x = a + 1/8 in
# [-1/8, 1/8): its error is at most (1/8)^5 / 5! = 2.5e-7, 546 LSB of Q0.31. Over all 2^29 inputs
# the int32 version is off by at most 492.37 LSB (at a = -40101, next to 0, where x = 1/8).
EXP32_MAX_ERROR = 493


@given(st.integers(-(2**29), -1))
@example(-40101)
@example(-(2**29))
@example(-1)
def test_exp_on_interval32_matches_exp(a):
    got = fp.exp_on_interval_m1_4_0_32(a)
    assert abs(got - math.exp(a / 2**31) * 2**31) <= EXP32_MAX_ERROR


@given(st.integers(0, 6), st.integers(-32768, 0))
def test_exp_on_negative_values(ib, a):
    got = fp.exp_on_negative_values16(a, ib)
    want = math.exp(a / 2 ** (15 - ib)) * 32768
    assert abs(got - min(want, 32767)) <= 8


@given(st.integers(0, 6), st.integers(-(2**31), 0))
@example(5, 0)
@example(5, -1)
@example(0, -40101)  # the polynomial's worst input (integer_bits 0 feeds it unchanged)
@example(6, -(2**30))  # just above the clamp to 0
@example(6, -(2**30) - 1)
@example(0, -(2**31))
def test_exp_on_negative_values32(ib, a):
    # the range reduction multiplies by constants below 1, so the polynomial's error bound holds
    got = fp.exp_on_negative_values32(a, ib)
    want = math.exp(a / 2 ** (31 - ib)) * 2**31
    assert 0 <= got <= 2**31 - 1
    assert abs(got - min(want, 2**31 - 1)) <= EXP32_MAX_ERROR


def test_one_over_one_plus_x_exhaustive():
    # three Newton-Raphson steps in Q2.13: accurate to 6 LSB of Q0.15 over the whole input range
    errs = [abs(fp.one_over_one_plus_x16(a) - 32768 / (1 + a / 32768)) for a in range(32768)]
    assert max(errs) <= 6


@given(st.integers(0, 2**31 - 1))
@example(0)  # 1/(1+0) = 1 saturates to INT32_MAX
@example(47128705)  # the worst of all 2^31 inputs: 6.84 LSB
@example(2**31 - 1)
def test_one_over_one_plus_x32(a):
    # the same three Newton-Raphson steps in Q2.29: within 7 LSB of Q0.31 on every input
    got = fp.one_over_one_plus_x32(a)
    want = min(2**31 / (1 + a / 2**31), 2**31 - 1)
    assert abs(got - want) <= 7


def test_one_minus_x_over_one_plus_x_exhaustive():
    errs = [abs(fp.one_minus_x_over_one_plus_x16(a) - 32768 * (1 - a / 32768) / (1 + a / 32768))
            for a in range(32768)]
    assert max(errs) <= 12


@pytest.mark.parametrize("ib", range(7))
def test_tanh_tables_exhaustive(ib):
    table = fp.tanh_table(ib).astype(np.int64)
    x = (np.arange(65536) - 32768) / 2.0 ** (15 - ib)
    err = np.abs(table - np.tanh(x) * 32768)
    assert err.max() <= 12.1  # gemmlowp's published accuracy (TF PR #34589): +-11.8..12.05 LSB
    # odd symmetry on every input that has a negation
    assert np.array_equal(table[1:][::-1], -table[1:])
    assert table[32768] == 0


def test_logistic_table_exhaustive():
    table = fp.logistic_table(3).astype(np.int64)
    x = (np.arange(65536) - 32768) / 4096.0
    err = np.abs(table - 32768 / (1 + np.exp(-x)))
    assert err.max() <= 6.4  # gemmlowp's published accuracy: -6.39 .. +5.39 LSB
    pos = table[32769:]
    neg = table[1:32768][::-1]
    assert np.all(pos + neg == 32767)  # result_if_negative = One - result_if_positive
    assert table[32768] == 16384


@given(i16, st.integers(0, 6))
def test_tanh16_matches_table(a, ib):
    assert fp.tanh16(a, ib) == fp.tanh_table(ib)[a + 32768]


def test_tanh_table_rejects_bad_integer_bits():
    with pytest.raises(ValueError):
        fp.tanh_table(7)


@settings(max_examples=200)
@given(st.integers(-(2**40), 2**40))
def test_wrap_and_saturate(x):
    assert fp.wrap32(x) == wrap(x, 32)
    assert fp.wrap16(x) == wrap(x, 16)
    assert fp.sat16(x) == max(-32768, min(32767, x))
    assert fp.sat8(x) == max(-128, min(127, x))


# -- TFLite Micro's primitives -----------------------------------------------------------------------
@given(st.integers(0, 2**31 - 1))
@example(0)
@example(2**31 - 1)
def test_one_minus_x_over_one_plus_x32(a):
    # the int32 twin of the 16-bit function: within 14 LSB of Q0.31 (13.5 over 50,000 random inputs)
    got = fp.one_minus_x_over_one_plus_x32(a)
    want = min(2**31 * (1 - a / 2**31) / (1 + a / 2**31), 2**31 - 1)
    assert abs(got - want) <= 14


@given(i32)
@example(0)
@example(1)
@example(-1)
@example(-(2**31) + 1)
def test_logistic32_and_tanh32(a):
    """gemmlowp's int32 logistic and tanh on Q4.27 (TFLite Micro's int8 LOGISTIC/TANH): within 160
    and 320 LSB of Q0.31 (measured 151 and 299), odd/complementary symmetry exact."""
    x = a / 2**27
    lg, th = fp.logistic32(a, 4), fp.tanh32(a, 4)
    assert abs(lg - 2**31 / (1 + math.exp(-x))) <= 160
    assert abs(th - 2**31 * math.tanh(x)) <= 320
    if a != 0:
        assert fp.logistic32(-a, 4) == 2**31 - 1 - lg
        assert fp.tanh32(-a, 4) == -th
    else:
        assert (lg, th) == (2**30, 0)


@given(i16, st.integers(0, 15), st.integers(1, 3 << 13))
def test_lut_scale_input16(x, shift, multiplier):
    assert fp.lut_scale_input16(x, 0, shift) == x * 3 * 2**shift
    # (x * m + 2^(s-1)) >> s: round to nearest, ties toward +infinity
    want = math.floor(Fraction(x * multiplier, 2**shift) + Fraction(1, 2)) if shift else x * multiplier
    assert fp.lut_scale_input16(x, multiplier, shift) == want


def test_sigmoid_table_uint16_is_sigmoid_i_over_24():
    t = fp.SIGMOID_TABLE_UINT16
    assert t.shape == (256,) and t[0] == 32768 and t[-1] == 65535 and np.all(np.diff(t) >= 0)
    assert np.abs(t - 65536 / (1 + np.exp(-np.arange(256) / 24))).max() < 1.12  # measured 1.109


def test_lut_logistic_exhaustive():
    table = fp.lut_table("logistic").astype(np.int64)
    x = (np.arange(65536) - 32768) / 4096.0
    assert np.abs(table - 32768 / (1 + np.exp(-x))).max() <= 1.02  # TF PR #34589: +-1.016 LSB
    assert np.all(np.diff(table) >= 0)
    assert np.all(table[1:32768] + table[65535:32768:-1] == 32768)
    assert table[32768] == 16384


@pytest.mark.parametrize("multiplier,shift,input_exp", [(0, 0, -12), (0, 1, -11), (0, 3, -9), (3, 1, -13),
                                                        (3, 3, -15), (3, 7, -19)])
def test_lut_tanh_exhaustive(multiplier, shift, input_exp):
    """Q(15+cs) cell states reach the table by a left shift (multiplier 0) or a rounding right shift
    (multiplier 3): within 1.5 LSB of Q0.15 without a right shift (TF PR #34589: +-1.477), 2.4 with
    one (measured 2.44: the shift rounds the input), exactly odd."""
    table = fp.lut_table("tanh", multiplier, shift).astype(np.int64)
    x = (np.arange(65536) - 32768) * 2.0 ** input_exp
    assert np.abs(table - 32768 * np.tanh(x)).max() <= (1.48 if multiplier == 0 else 2.45)
    assert np.all(np.diff(table) >= 0)
    if multiplier == 0:
        assert np.array_equal(table[1:][::-1], -table[1:])
    assert fp.lut_tanh16(12345, multiplier, shift) == table[12345 + 32768]


def test_lut_table_rejects_bad_kind():
    with pytest.raises(ValueError):
        fp.lut_table("relu")
