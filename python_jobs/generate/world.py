"""The merchants, terminals, ATMs and boleto issuers customers deal with.

The world is a pure function of (seed, initial customer count): it is rebuilt on every
run instead of being stored, and its size follows the bank's size so that terminals see
a plausible number of this bank's cards per day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from python_jobs.generate import formatting as fmt
from python_jobs.generate import reference as ref

WORLD_STREAM = 9


@dataclass(frozen=True)
class World:
    terminal_no: np.ndarray  # id number of each in-store POS terminal
    terminal_city: np.ndarray
    terminal_mcc: np.ndarray  # index into reference.MCCS
    terminal_city_start: np.ndarray  # terminals are sorted by city: [start, start+count)
    terminal_city_count: np.ndarray
    atm_no: np.ndarray
    atm_city_start: np.ndarray
    atm_city_count: np.ndarray
    merchant_no: np.ndarray  # online merchants
    merchant_mcc: np.ndarray
    merchant_cum_weight: np.ndarray  # popularity (Zipf): a few big platforms take most sales
    issuer_no: np.ndarray  # boleto issuers (utilities, schools, retailers...)
    issuer_cum_weight: np.ndarray
    ring_keys: np.ndarray  # PIX keys of a fraud ring, reused across victims
    ring_devices: np.ndarray  # devices of a fraud ring
    salt: int  # seed-derived salt for stateless per-customer hashes

    def terminals_in(self, city: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A terminal in each city; u in [0, 1) skewed so some shops are busier."""
        offset = (u**1.6 * self.terminal_city_count[city]).astype(np.int64)
        return self.terminal_city_start[city] + offset

    def atms_in(self, city: np.ndarray, u: np.ndarray) -> np.ndarray:
        return self.atm_city_start[city] + (u * self.atm_city_count[city]).astype(np.int64)

    def sample_merchants(self, u: np.ndarray) -> np.ndarray:
        return np.searchsorted(
            self.merchant_cum_weight, u * self.merchant_cum_weight[-1], side="right"
        )

    def sample_issuers(self, u: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.issuer_cum_weight, u * self.issuer_cum_weight[-1], side="right")


def sample_cities(rng: np.random.Generator, n: int) -> np.ndarray:
    """Cities drawn by population: where customers live, or where they travel to."""
    return rng.choice(len(ref.CITY_NAMES), size=n, p=ref.CITY_WEIGHTS).astype(np.int16)


def _per_city(total: int, minimum: int) -> np.ndarray:
    return np.maximum(minimum, np.round(ref.CITY_WEIGHTS * total)).astype(np.int64)


def build_world(seed: int, customers: int) -> World:
    rng = np.random.default_rng([seed, 0, WORLD_STREAM])
    salt = int(rng.integers(1, 2**62))
    terminal_count = _per_city(max(2_000, customers // 2), 3)
    terminal_city = np.repeat(np.arange(len(ref.CITY_NAMES)), terminal_count).astype(np.int16)
    pos_p = ref.MCC_POS_WEIGHT / ref.MCC_POS_WEIGHT.sum()
    terminal_mcc = rng.choice(len(ref.MCCS), size=terminal_city.size, p=pos_p).astype(np.int16)
    atm_count = _per_city(max(300, customers // 20), 1)
    n_merchants = max(300, customers // 20)
    online_p = ref.MCC_ONLINE_WEIGHT / ref.MCC_ONLINE_WEIGHT.sum()
    n_issuers = max(200, customers // 25)
    return World(
        terminal_no=fmt.scramble(np.arange(terminal_city.size), 10**8, salt),
        terminal_city=terminal_city,
        terminal_mcc=terminal_mcc,
        terminal_city_start=np.concatenate([[0], np.cumsum(terminal_count)[:-1]]),
        terminal_city_count=terminal_count,
        atm_no=fmt.scramble(np.arange(atm_count.sum()), 10**8, salt // 3),
        atm_city_start=np.concatenate([[0], np.cumsum(atm_count)[:-1]]),
        atm_city_count=atm_count,
        merchant_no=fmt.scramble(np.arange(n_merchants), 10**8, salt // 5),
        merchant_mcc=rng.choice(len(ref.MCCS), size=n_merchants, p=online_p).astype(np.int16),
        merchant_cum_weight=np.cumsum(1.0 / np.arange(1, n_merchants + 1) ** 1.1),
        issuer_no=rng.integers(1, 2**62, size=n_issuers),
        issuer_cum_weight=np.cumsum(1.0 / np.arange(1, n_issuers + 1) ** 0.9),
        ring_keys=rng.integers(1, fmt.PIX_KEY_MASK, size=40),
        ring_devices=rng.integers(1, 2**56, size=12),
        salt=salt,
    )
