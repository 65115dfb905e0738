"""Vectorized text building for raw values: ids, dates, timestamps, amounts, CPFs, keys.

Every raw transaction value is text, so formatting dominates generation cost long before
the random draws do. Fixed-width values (ids, timestamps, CPFs) are assembled as ASCII
byte matrices in numpy and handed to Arrow as a single buffer; variable-width ones
(amounts, names, e-mails) are joined with pyarrow.compute. No per-row Python anywhere.
"""

from __future__ import annotations

import functools
from datetime import date
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from python_jobs.generate import reference as ref

_ZERO = ord("0")
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Every byte value as its two lowercase hex digits, one uint16 each (little-endian, so the
# high nibble's character comes first in memory): one table gather per byte instead of a
# shift, mask and gather per hex digit.
_HEX_PAIRS = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype="<u2")
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
    """Writes the low 4*width bits as hex: the big-endian bytes of each value go through
    the byte -> two-digit table, so the whole matrix is one gather (width <= 16)."""
    v = np.asarray(values).astype(">u8")  # big-endian: most significant byte first
    n_bytes = (width + 1) // 2
    pairs = _HEX_PAIRS[v.view(np.uint8).reshape(-1, 8)[:, 8 - n_bytes :]]
    text = pairs.view(np.uint8).reshape(-1, 2 * n_bytes)
    _field(out, pos, width)[:] = _rows_as_void(text[:, 2 * n_bytes - width :])  # odd: drop one


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
        if isinstance(part, str) and w == 1:
            matrix[:, pos] = ord(part)
        elif isinstance(part, str):
            literal = np.frombuffer(part.encode("ascii"), np.uint8).view(f"V{w}")[0]
            _field(matrix, pos, w)[:] = literal
        elif isinstance(part, Digits):
            _put_digits(matrix, pos, part.values, w)
        elif isinstance(part, Hex):
            _put_hex(matrix, pos, part.values, w)
        else:
            _field(matrix, pos, w)[:] = _rows_as_void(part)
        pos += w
    return _from_bytes(matrix.reshape(-1), n, width, null_mask)


def _field(matrix: np.ndarray, pos: int, width: int) -> np.ndarray:
    """Bytes [pos, pos + width) of every row of a C-contiguous byte matrix as a 1-D array of
    `width`-byte void items. numpy then copies each row's bytes in one step; assigning a
    2-D block loops over tiny rows and is about three times slower."""
    return matrix.reshape(-1).view(_field_dtype(pos, width, matrix.shape[1]))["f"]


@functools.cache
def _field_dtype(pos: int, width: int, row_width: int) -> np.dtype:
    return np.dtype(
        {"names": ["f"], "formats": [f"V{width}"], "offsets": [pos], "itemsize": row_width}
    )


def _rows_as_void(part: np.ndarray) -> np.ndarray:
    """An (n, w) byte matrix (a column slice of a wider one is fine) as n w-byte items."""
    part = np.asarray(part, dtype=np.uint8)
    if part.strides[1] != 1:
        part = np.ascontiguousarray(part)
    return part.view(f"V{part.shape[1]}")[:, 0]


def _from_bytes(
    data: np.ndarray, n: int, lengths: np.ndarray | int, null_mask: np.ndarray | None
) -> pa.Array:
    """An Arrow string array over a contiguous byte buffer and per-row lengths (or one
    fixed width: the offsets are then a plain arange, no cumulative sum)."""
    if isinstance(lengths, int):
        small = (n + 1) * lengths < 2**31
        offsets = np.arange(n + 1, dtype=np.int32 if small else np.int64) * lengths
    else:
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
    large = offsets[-1] >= 2**31
    validity, null_count = None, 0
    if null_mask is not None and null_mask.any():
        validity = pa.py_buffer(np.packbits(~null_mask, bitorder="little"))
        null_count = int(null_mask.sum())
    string_type = pa.large_string() if large else pa.string()
    offsets = offsets if large else offsets.astype(np.int32, copy=False)
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


_CLOCK: list[np.ndarray] = []  # the time-of-day table, built on first use


def _clock() -> np.ndarray:
    """'HH:MM:SS' of every second of the day, 8 ASCII bytes held as one uint64 each
    (86,400 x 8 = 675 KiB): a time of day is then a single 8-byte gather."""
    if not _CLOCK:
        s = np.arange(86_400)
        fixed = fixed_width(s.size, *time_parts(s))  # the one place the digits are computed
        _CLOCK.append(np.frombuffer(fixed.buffers()[2], np.uint64, count=s.size).copy())
    return _CLOCK[0]


def timestamps_on(day: date, seconds: np.ndarray) -> pa.Array:
    """Timestamps that all fall on one day: the date is a literal, the time one gather
    from the time-of-day table."""
    clock = _clock()[np.asarray(seconds, dtype=np.int64)]
    return fixed_width(clock.size, f"{day:%Y-%m-%d} ", clock.view(np.uint8).reshape(-1, 8))


def amounts(cents: np.ndarray) -> pa.Array:
    """'1234.56' from integer cents (non-negative). Rows are grouped by their number of
    integer digits (a stable radix sort of a uint8), each group is one fixed-width block,
    and one `take` puts the rows back in order: about half the cost of squeezing leading
    zeros out of a right-aligned matrix with a boolean mask."""
    cents = np.asarray(cents, dtype=np.int64)
    n = cents.size
    whole, frac = np.divmod(cents, 100)
    used = np.ones(n, np.uint8)  # integer digits of each row
    width = 1
    while n and width < 19 and (whole >= 10**width).any():
        used += whole >= 10**width
        width += 1
    if width == 1:
        return fixed_width(n, digits(whole, 1), ".", digits(frac, 2))
    order = np.argsort(used, kind="stable")
    counts = np.bincount(used, minlength=width + 1)
    pieces, start = [], 0
    for d in range(1, width + 1):
        rows = order[start : start + counts[d]]
        start += counts[d]
        if rows.size:
            pieces.append(
                fixed_width(rows.size, digits(whole[rows], d), ".", digits(frac[rows], 2))
            )
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)
    return pa.concat_arrays(pieces).take(pa.array(position))


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
    """(n, 11) digit values (0-9) of the CPFs with 9-digit roots `base`, check digits included.

    Both weighted sums are accumulated while the digits are peeled off, one column at a
    time (twice as fast as row-wise sums over digit matrices).
    """
    part = np.asarray(base, dtype=np.int64)
    out = np.empty((part.size, 11), np.int64)
    first, second = np.zeros(part.size, np.int64), np.zeros(part.size, np.int64)
    for j in range(8, -1, -1):
        quotient = part // 10
        digit = part - quotient * 10
        out[:, j] = digit
        first += digit * (10 - j)
        second += digit * (11 - j)
        part = quotient
    out[:, 9] = _check_digit(first)
    out[:, 10] = _check_digit(second + out[:, 9] * 2)
    return out


def _check_digit(weighted_sum: np.ndarray) -> np.ndarray:
    remainder = weighted_sum % 11
    return np.where(remainder < 2, 0, 11 - remainder)


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
    return scatter(keys.size, pix_key_pieces(keys))


def pix_key_pieces(keys: np.ndarray) -> list[tuple[np.ndarray, pa.Array]]:
    """`pix_keys` as (rows, text) per kind of key, for a caller that scatters once."""
    keys = np.asarray(keys, dtype=np.int64)
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
    return pieces


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
    """Boleto issuers (or payers) as 14-digit CNPJs with valid check digits. A day's
    boletos go to a few thousand issuers: each distinct one is computed once."""
    distinct, inverse = np.unique(np.asarray(numbers), return_inverse=True)
    roots = (mix64(distinct, 0xB0) % _U64(10**8)).astype(np.int64)
    cnpj = cnpj_digits(roots)
    return fixed_width(cnpj.shape[0], (cnpj + _ZERO).astype(np.uint8)).take(pa.array(inverse))


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


def dictionary(
    codes: np.ndarray, vocabulary: pa.Array, null_mask: np.ndarray | None = None
) -> pa.DictionaryArray:
    """A text column as indices into `vocabulary` (int8 or int16 indices, nulls where
    masked): what the low-cardinality raw columns are built as."""
    index_type = np.int8 if len(vocabulary) <= 127 else np.int16
    indices = pa.array(np.asarray(codes).astype(index_type), mask=null_mask)
    return pa.DictionaryArray.from_arrays(indices, vocabulary)


def encode(
    values: pa.Array | pa.ChunkedArray, vocabulary: pa.Array, index_type: pa.DataType
) -> pa.DictionaryArray:
    """Text values as a dictionary array over `vocabulary`. A value outside it is a
    generator bug, not data: it raises."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    codes = pc.index_in(values.cast(pa.string()), value_set=vocabulary)
    if codes.null_count != values.null_count:
        raise ValueError("a raw value is not in its column's vocabulary")
    return pa.DictionaryArray.from_arrays(codes.cast(index_type), vocabulary)


def single(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as is (combine_chunks would copy it)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def with_nulls(array: pa.Array, null_mask: np.ndarray) -> pa.Array:
    """`array` with the masked rows set to null: only a new validity bitmap over the same
    value buffers (no copy of the strings), existing nulls kept."""
    if not null_mask.any():
        return array
    if isinstance(array, pa.DictionaryArray):
        return pa.DictionaryArray.from_arrays(
            with_nulls(array.indices, null_mask), array.dictionary
        )
    valid = ~null_mask
    if array.null_count:
        valid &= array.is_valid().to_numpy(zero_copy_only=False)
    # The bitmap starts at the array's own offset (a slice shares its parent's buffers).
    bits = np.concatenate([np.ones(array.offset, bool), valid])
    buffers = array.buffers()
    buffers[0] = pa.py_buffer(np.packbits(bits, bitorder="little"))
    return pa.Array.from_buffers(
        array.type, len(array), buffers, null_count=int((~valid).sum()), offset=array.offset
    )


def replace_rows(array: pa.Array, rows: np.ndarray, values: pa.Array) -> pa.Array:
    """`array` with `values` written at positions `rows` (rows are distinct): one `take`
    over [array, values], which copies the column once (replace_with_mask is ~3x slower)."""
    if rows.size == 0:
        return array
    n = len(array)
    index = np.arange(n)
    index[rows] = n + np.arange(rows.size)
    return pa.concat_arrays([array, values.cast(array.type)]).take(pa.array(index))
