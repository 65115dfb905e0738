"""Vectorized text building for raw values: ids, dates, timestamps, amounts, CPFs, keys.

Every raw transaction value is text, so formatting dominates generation cost long before
the random draws do. Fixed-width values (ids, timestamps, CPFs) are assembled as ASCII
byte matrices in numpy and handed to Arrow as a single buffer; variable-width ones
(amounts, names, e-mails) are joined with pyarrow.compute. No per-row Python anywhere.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from python_jobs.generate import reference as ref

_ZERO = ord("0")
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_U64 = np.uint64


class Digits(NamedTuple):
    """A fixed-width part: non-negative integers written zero padded (high digits dropped)."""

    values: np.ndarray
    width: int


class Hex(NamedTuple):
    """A fixed-width part: the low 4*width bits of integers as lowercase hex."""

    values: np.ndarray
    width: int


Part = str | np.ndarray | Digits | Hex


def digits(values: np.ndarray | int, width: int) -> Digits:
    return Digits(np.atleast_1d(np.asarray(values)), width)


def digit_values(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) digit values 0-9 (for check-digit arithmetic)."""
    values = np.atleast_1d(np.asarray(values))
    out = np.empty((values.size, width), np.uint8)
    _put_digits(out, 0, values, width)
    return out.astype(np.int64) - _ZERO


def _put_digits(out: np.ndarray, pos: int, values: np.ndarray, width: int) -> None:
    """Writes ASCII digits into out[:, pos:pos+width], nine at a time in uint32 (3x faster
    than int64 division)."""
    v = np.asarray(values, dtype=np.int64)
    end = pos + width
    while end > pos:
        chunk = min(9, end - pos)
        if end - chunk > pos:
            part = (v % 10**chunk).astype(np.uint32)
            v = v // 10**chunk
        elif v.size and v.min() >= 0 and v.max() < 10**chunk:
            part = v.astype(np.uint32)  # the common case: the value fits, no division needed
        else:
            part = (v % 10**chunk).astype(np.uint32)
        for j in range(end - 1, end - chunk - 1, -1):
            quotient = part // 10
            out[:, j] = part - quotient * 10 + _ZERO
            part = quotient
        end -= chunk


def hex_matrix(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) ASCII hex digits, to slice into formats like UUIDs."""
    values = np.atleast_1d(np.asarray(values))
    out = np.empty((values.size, width), np.uint8)
    _put_hex(out, 0, values, width)
    return out


def _put_hex(out: np.ndarray, pos: int, values: np.ndarray, width: int) -> None:
    v = np.asarray(values).astype(np.uint64)
    end = pos + width
    while end > pos:
        chunk = min(7, end - pos)  # 28 bits fit a uint32
        part = (v & _U64(2 ** (4 * chunk) - 1)).astype(np.uint32)
        v = v >> _U64(4 * chunk)
        for j in range(end - 1, end - chunk - 1, -1):
            out[:, j] = _HEX[part & 15]
            part = part >> 4
        end -= chunk


def _part_width(part: Part) -> int:
    if isinstance(part, str):
        return len(part.encode("ascii"))
    if isinstance(part, Digits | Hex):
        return part.width
    return part.shape[1]


def fixed_width(n: int, *parts: Part, null_mask: np.ndarray | None = None) -> pa.Array:
    """Assembles literals, digit/hex parts and byte matrices side by side into one Arrow
    string array, writing straight into the final buffer."""
    width = sum(_part_width(p) for p in parts)
    matrix = np.empty((n, width), np.uint8)
    pos = 0
    for part in parts:
        w = _part_width(part)
        if isinstance(part, str):
            matrix[:, pos : pos + w] = np.frombuffer(part.encode("ascii"), dtype=np.uint8)
        elif isinstance(part, Digits):
            _put_digits(matrix, pos, part.values, w)
        elif isinstance(part, Hex):
            _put_hex(matrix, pos, part.values, w)
        else:
            matrix[:, pos : pos + w] = part
        pos += w
    lengths = np.full(n, width, np.int64)
    return _from_bytes(matrix.reshape(-1), lengths, null_mask)


def _from_bytes(data: np.ndarray, lengths: np.ndarray, null_mask: np.ndarray | None) -> pa.Array:
    """An Arrow string array over a contiguous byte buffer and per-row lengths."""
    n = lengths.size
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    large = offsets[-1] >= 2**31
    validity, null_count = None, 0
    if null_mask is not None and null_mask.any():
        validity = pa.py_buffer(np.packbits(~null_mask, bitorder="little"))
        null_count = int(null_mask.sum())
    string_type = pa.large_string() if large else pa.string()
    offsets = offsets if large else offsets.astype(np.int32)
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    array = pa.Array.from_buffers(string_type, n, buffers, null_count=null_count)
    return array.cast(pa.string()) if large else array


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """'C0000042'-style ids: a prefix and a zero-padded number."""
    numbers = np.asarray(numbers)
    return fixed_width(numbers.size, prefix, digits(numbers, width))


def civil(ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day arrays from proleptic Gregorian ordinals (date.toordinal())."""
    days = (np.asarray(ordinals, dtype=np.int64) - _EPOCH_ORDINAL).astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    year = months.astype(np.int64) // 12 + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def date_parts(ordinals: np.ndarray) -> list[Part]:
    year, month, day = civil(ordinals)
    return [digits(year, 4), "-", digits(month, 2), "-", digits(day, 2)]


def time_parts(seconds: np.ndarray) -> list[Part]:
    s = np.asarray(seconds, dtype=np.int64)
    return [digits(s // 3600, 2), ":", digits(s // 60 % 60, 2), ":", digits(s % 60, 2)]


def dates(ordinals: np.ndarray) -> pa.Array:
    """'YYYY-MM-DD' strings."""
    return fixed_width(np.asarray(ordinals).size, *date_parts(ordinals))


def timestamps(ordinals: np.ndarray, seconds: np.ndarray) -> pa.Array:
    """'YYYY-MM-DD HH:MM:SS' strings from day ordinals and seconds since midnight."""
    n = np.asarray(seconds).size
    ordinals = np.broadcast_to(np.asarray(ordinals), (n,))
    return fixed_width(n, *date_parts(ordinals), " ", *time_parts(seconds))


def timestamps_on(day: date, seconds: np.ndarray) -> pa.Array:
    """Timestamps that all fall on one day: the date is a literal, only the time varies."""
    n = np.asarray(seconds).size
    return fixed_width(n, f"{day:%Y-%m-%d} ", *time_parts(seconds))


def amounts(cents: np.ndarray) -> pa.Array:
    """'1234.56' from integer cents (non-negative): digits right-aligned in a byte matrix,
    leading zeros then squeezed out with one boolean mask."""
    cents = np.asarray(cents, dtype=np.int64)
    n = cents.size
    whole = cents // 100
    n_digits = 1
    while n and whole.max() >= 10**n_digits:
        n_digits += 1
    matrix = np.empty((n, n_digits + 3), np.uint8)
    _put_digits(matrix, 0, whole, n_digits)
    matrix[:, n_digits] = ord(".")
    _put_digits(matrix, n_digits + 1, cents % 100, 2)
    used = np.ones(n, np.int64)
    for k in range(1, n_digits):
        used += whole >= 10**k
    keep = np.arange(n_digits + 3)[None, :] >= (n_digits - used)[:, None]
    return _from_bytes(matrix[keep], used + 3, None)


def mix64(values: np.ndarray | int, salt: int = 0) -> np.ndarray:
    """SplitMix64 finalizer: a cheap stateless hash, so derived attributes need no storage."""
    z = np.atleast_1d(np.asarray(values)).astype(np.uint64) ^ _U64(salt & (2**64 - 1))
    z = z + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def scramble(numbers: np.ndarray, modulus: int, salt: int) -> np.ndarray:
    """A bijection of [0, modulus) (modulus a power of ten): unique ids that don't look serial."""
    multiplier = (salt % (modulus // 10)) * 10 + 7  # ends in 7: coprime with 2 and 5
    offset = (salt // 7) % modulus
    return (np.asarray(numbers, dtype=np.int64) * multiplier + offset) % modulus


# --- Brazilian documents -----------------------------------------------------------------


def _dv(digit_values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Modulo-11 check digit shared by CPF and CNPJ."""
    remainder = (digit_values * weights).sum(axis=1) % 11
    return np.where(remainder < 2, 0, 11 - remainder)


def cpf_digits(base: np.ndarray) -> np.ndarray:
    """(n, 11) digit values (0-9) of the CPFs with 9-digit roots `base`, check digits included."""
    d = digit_values(base, 9)
    d1 = _dv(d, np.arange(10, 1, -1))
    d = np.column_stack([d, d1])
    d2 = _dv(d, np.arange(11, 1, -1))
    return np.column_stack([d, d2])


def cpf_roots(numbers: np.ndarray, salt: int) -> np.ndarray:
    """Unique 9-digit CPF roots per number; roots made of one repeated digit are invalid."""
    roots = scramble(numbers, 10**9, salt)
    return np.where(roots % 111_111_111 == 0, (roots + 123_457) % 10**9, roots)


def format_cpf(cpf: np.ndarray, punctuated: bool = True) -> pa.Array:
    """'123.456.789-09' (or '12345678909') from (n, 11) digit values."""
    ascii_digits = (cpf + _ZERO).astype(np.uint8)
    n = cpf.shape[0]
    if not punctuated:
        return fixed_width(n, ascii_digits)
    a = ascii_digits
    return fixed_width(n, a[:, 0:3], ".", a[:, 3:6], ".", a[:, 6:9], "-", a[:, 9:11])


def cnpj_digits(roots: np.ndarray) -> np.ndarray:
    """(n, 14) digit values of head-office CNPJs ('/0001') with valid check digits."""
    d = digit_values(roots, 8)
    d = np.column_stack([d, np.tile([0, 0, 0, 1], (d.shape[0], 1))])
    d1 = _dv(d, np.array([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]))
    d = np.column_stack([d, d1])
    d2 = _dv(d, np.array([6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]))
    return np.column_stack([d, d2])


# --- Counterparty keys ---------------------------------------------------------------------

PIX_KEY_MASK = 2**53 - 1


def pix_keys(keys: np.ndarray) -> pa.Array:
    """PIX keys from key numbers: random (EVP) 40%, CPF 25%, phone 25%, e-mail 10%.

    A key number is all the state a beneficiary needs; its text is derived here so the
    same number always renders as the same key.
    """
    keys = np.asarray(keys, dtype=np.int64)
    n = keys.size
    h1 = mix64(keys, 0x5151)
    h2 = mix64(keys, 0xA7A7)
    bucket = keys % 20
    pieces: list[tuple[np.ndarray, pa.Array]] = []
    evp = np.flatnonzero(bucket < 8)
    if evp.size:
        a, b = hex_matrix(h1[evp], 16), hex_matrix(h2[evp], 16)
        version = np.full((evp.size, 1), ord("4"), np.uint8)
        variant = _HEX[8 + (h2[evp] >> _U64(62)).astype(np.intp)][:, None]
        text = fixed_width(
            evp.size,
            a[:, :8],
            "-",
            a[:, 8:12],
            "-",
            version,
            a[:, 12:15],
            "-",
            variant,
            b[:, :3],
            "-",
            b[:, 3:15],
        )
        pieces.append((evp, text))
    cpf = np.flatnonzero((bucket >= 8) & (bucket < 13))
    if cpf.size:
        roots = (h1[cpf] % _U64(10**9)).astype(np.int64)
        pieces.append((cpf, format_cpf(cpf_digits(roots), punctuated=False)))
    phone = np.flatnonzero((bucket >= 13) & (bucket < 18))
    if phone.size:
        ddd = ref.DDDS[(h1[phone] % _U64(ref.DDDS.size)).astype(np.intp)]
        number = (h2[phone] % _U64(10**8)).astype(np.int64)
        pieces.append(
            (phone, fixed_width(phone.size, "+55", digits(ddd, 2), "9", digits(number, 8)))
        )
    email = np.flatnonzero(bucket >= 18)
    if email.size:
        h = h1[email]
        first = ref.FIRST_NAME_ASCII.take(pa.array((h % _U64(len(ref.FIRST_NAMES))).astype(int)))
        last = ref.LAST_NAME_ASCII.take(
            pa.array(((h >> _U64(16)) % _U64(len(ref.LAST_NAMES))).astype(int))
        )
        num = fixed_width(email.size, digits((h >> _U64(32)).astype(np.int64) % 100, 2))
        domain = ref.EMAIL_DOMAINS.take(
            pa.array(((h >> _U64(48)) % _U64(len(ref.EMAIL_DOMAINS))).astype(int))
        )
        local = pc.binary_join_element_wise(
            first, pc.binary_join_element_wise(last, num, ""), "."
        )  # "first.lastNN"
        pieces.append((email, pc.binary_join_element_wise(local, domain, "@")))
    return scatter(n, pieces)


def terminal_ids(numbers: np.ndarray) -> pa.Array:
    return ids("TRM", numbers, 8)


def atm_ids(numbers: np.ndarray) -> pa.Array:
    return ids("ATM", numbers, 8)


def merchant_ids(numbers: np.ndarray) -> pa.Array:
    return ids("MER", numbers, 8)


def bank_accounts(numbers: np.ndarray) -> pa.Array:
    """'341-0123-00123456-7': bank code, agency, account, check digit."""
    h = mix64(numbers, 0x7ED)
    n = h.size
    bank = ref.BANK_CODES[(h % _U64(ref.BANK_CODES.size)).astype(np.intp)]
    agency = ((h >> _U64(8)) % _U64(10**4)).astype(np.int64)
    account = ((h >> _U64(24)) % _U64(10**8)).astype(np.int64)
    dv = ((h >> _U64(56)) % _U64(10)).astype(np.int64)
    return fixed_width(
        n, digits(bank, 3), "-", digits(agency, 4), "-", digits(account, 8), "-", digits(dv, 1)
    )


def issuer_ids(numbers: np.ndarray) -> pa.Array:
    """Boleto issuers (or payers) as 14-digit CNPJs with valid check digits."""
    roots = (mix64(numbers, 0xB0) % _U64(10**8)).astype(np.int64)
    cnpj = cnpj_digits(roots)
    return fixed_width(cnpj.shape[0], (cnpj + _ZERO).astype(np.uint8))


def device_ids(numbers: np.ndarray) -> pa.Array:
    """'dv-' + 14 hex digits (56 random bits per device)."""
    numbers = np.asarray(numbers)
    return fixed_width(numbers.size, "dv-", Hex(numbers, 14))


# --- Assembly --------------------------------------------------------------------------------


def scatter(n: int, pieces: list[tuple[np.ndarray, pa.Array]]) -> pa.Array:
    """Puts per-subset string arrays back at their row positions; uncovered rows are null."""
    if not pieces:
        return pa.nulls(n, pa.string())
    order = np.concatenate([rows for rows, _ in pieces])
    values = pa.concat_arrays([v.cast(pa.string()) for _, v in pieces])
    position = np.full(n, -1, dtype=np.int64)
    position[order] = np.arange(order.size)
    return values.take(pa.array(position, mask=position < 0))


def with_nulls(array: pa.Array, null_mask: np.ndarray) -> pa.Array:
    """`array` with the masked rows set to null."""
    if not null_mask.any():
        return array
    return pc.if_else(pa.array(null_mask), pa.scalar(None, array.type), array)


def replace_rows(array: pa.Array, rows: np.ndarray, values: pa.Array) -> pa.Array:
    """`array` with `values` written at positions `rows` (rows are distinct)."""
    if rows.size == 0:
        return array
    mask = np.zeros(len(array), dtype=bool)
    mask[rows] = True
    ordered = values.take(pa.array(np.argsort(rows, kind="stable")))
    return pc.replace_with_mask(array, pa.array(mask), ordered.cast(array.type))
