"""Static reference data the generator draws from: geography, names, MCCs, spellings.

Kept as plain Python literals so it is reviewable, and exposed as numpy / pyarrow arrays
so generation code only ever indexes them (no per-row lookups). The spelling maps are
also the source of the dbt normalization seed, so every variant written into raw data is
listed here with its canonical value.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pyarrow as pa

# --- Geography -------------------------------------------------------------------------
# (UF, region, population in millions (Censo 2022, rounded), [(city, relative weight), ...]).
# The first city is the capital; weights are rough shares of the UF's urban population.
_UFS: tuple[tuple[str, str, float, tuple[tuple[str, float], ...]], ...] = (
    (
        "SP",
        "Sudeste",
        44.4,
        (
            ("São Paulo", 11.5),
            ("Guarulhos", 1.3),
            ("Campinas", 1.1),
            ("São José dos Campos", 0.7),
            ("Ribeirão Preto", 0.7),
        ),
    ),
    (
        "MG",
        "Sudeste",
        20.5,
        (
            ("Belo Horizonte", 2.3),
            ("Uberlândia", 0.7),
            ("Contagem", 0.6),
            ("Juiz de Fora", 0.55),
            ("Montes Claros", 0.4),
        ),
    ),
    (
        "RJ",
        "Sudeste",
        16.1,
        (
            ("Rio de Janeiro", 6.2),
            ("São Gonçalo", 0.9),
            ("Duque de Caxias", 0.8),
            ("Nova Iguaçu", 0.8),
            ("Niterói", 0.5),
        ),
    ),
    (
        "BA",
        "Nordeste",
        14.1,
        (
            ("Salvador", 2.4),
            ("Feira de Santana", 0.6),
            ("Vitória da Conquista", 0.35),
            ("Camaçari", 0.3),
        ),
    ),
    (
        "PR",
        "Sul",
        11.4,
        (
            ("Curitiba", 1.8),
            ("Londrina", 0.55),
            ("Maringá", 0.4),
            ("Ponta Grossa", 0.35),
            ("Cascavel", 0.35),
        ),
    ),
    (
        "RS",
        "Sul",
        10.9,
        (("Porto Alegre", 1.3), ("Caxias do Sul", 0.46), ("Canoas", 0.35), ("Pelotas", 0.33)),
    ),
    (
        "PE",
        "Nordeste",
        9.1,
        (
            ("Recife", 1.5),
            ("Jaboatão dos Guararapes", 0.64),
            ("Olinda", 0.35),
            ("Caruaru", 0.38),
            ("Petrolina", 0.39),
        ),
    ),
    (
        "CE",
        "Nordeste",
        8.8,
        (("Fortaleza", 2.4), ("Caucaia", 0.36), ("Juazeiro do Norte", 0.29), ("Maracanaú", 0.23)),
    ),
    (
        "PA",
        "Norte",
        8.1,
        (("Belém", 1.3), ("Ananindeua", 0.48), ("Santarém", 0.33), ("Marabá", 0.27)),
    ),
    (
        "SC",
        "Sul",
        7.6,
        (
            ("Florianópolis", 0.54),
            ("Joinville", 0.62),
            ("Blumenau", 0.36),
            ("São José", 0.27),
            ("Chapecó", 0.25),
        ),
    ),
    (
        "GO",
        "Centro-Oeste",
        7.1,
        (("Goiânia", 1.44), ("Aparecida de Goiânia", 0.53), ("Anápolis", 0.4), ("Rio Verde", 0.23)),
    ),
    (
        "MA",
        "Nordeste",
        6.8,
        (("São Luís", 1.04), ("Imperatriz", 0.27), ("São José de Ribamar", 0.24), ("Timon", 0.17)),
    ),
    (
        "PB",
        "Nordeste",
        4.0,
        (("João Pessoa", 0.83), ("Campina Grande", 0.42), ("Santa Rita", 0.15), ("Patos", 0.1)),
    ),
    (
        "AM",
        "Norte",
        3.9,
        (("Manaus", 2.06), ("Itacoatiara", 0.1), ("Manacapuru", 0.1), ("Parintins", 0.1)),
    ),
    (
        "ES",
        "Sudeste",
        3.8,
        (("Vitória", 0.32), ("Vila Velha", 0.47), ("Serra", 0.52), ("Cariacica", 0.35)),
    ),
    (
        "MT",
        "Centro-Oeste",
        3.7,
        (("Cuiabá", 0.65), ("Várzea Grande", 0.3), ("Rondonópolis", 0.24), ("Sinop", 0.2)),
    ),
    ("RN", "Nordeste", 3.3, (("Natal", 0.75), ("Mossoró", 0.26), ("Parnamirim", 0.25))),
    ("PI", "Nordeste", 3.3, (("Teresina", 0.87), ("Parnaíba", 0.16), ("Picos", 0.08))),
    ("AL", "Nordeste", 3.1, (("Maceió", 0.96), ("Arapiraca", 0.23), ("Rio Largo", 0.09))),
    (
        "DF",
        "Centro-Oeste",
        2.8,
        (("Brasília", 1.3), ("Ceilândia", 0.35), ("Taguatinga", 0.21), ("Samambaia", 0.22)),
    ),
    (
        "MS",
        "Centro-Oeste",
        2.8,
        (("Campo Grande", 0.9), ("Dourados", 0.24), ("Três Lagoas", 0.13), ("Corumbá", 0.1)),
    ),
    (
        "SE",
        "Nordeste",
        2.2,
        (
            ("Aracaju", 0.6),
            ("Nossa Senhora do Socorro", 0.19),
            ("Lagarto", 0.1),
            ("Itabaiana", 0.1),
        ),
    ),
    (
        "RO",
        "Norte",
        1.6,
        (("Porto Velho", 0.46), ("Ji-Paraná", 0.12), ("Ariquemes", 0.1), ("Vilhena", 0.1)),
    ),
    ("TO", "Norte", 1.5, (("Palmas", 0.3), ("Araguaína", 0.17), ("Gurupi", 0.09))),
    (
        "AC",
        "Norte",
        0.83,
        (("Rio Branco", 0.36), ("Cruzeiro do Sul", 0.09), ("Sena Madureira", 0.04)),
    ),
    ("AP", "Norte", 0.73, (("Macapá", 0.44), ("Santana", 0.11), ("Laranjal do Jari", 0.04))),
    ("RR", "Norte", 0.64, (("Boa Vista", 0.41), ("Rorainópolis", 0.03), ("Caracaraí", 0.02))),
)

UF_CODES: tuple[str, ...] = tuple(u[0] for u in _UFS)
UF_REGIONS: dict[str, str] = {u[0]: u[1] for u in _UFS}
UF_POPULATION: np.ndarray = np.array([u[2] for u in _UFS])

CITY_NAMES: tuple[str, ...] = tuple(c for u in _UFS for c, _ in u[3])
CITY_UF: np.ndarray = np.array([i for i, u in enumerate(_UFS) for _ in u[3]], dtype=np.int16)
CITY_IS_CAPITAL: np.ndarray = np.array([j == 0 for u in _UFS for j in range(len(u[3]))])
# Probability that a resident of Brazil lives in each city: UF population share times the
# city's share of its UF (the listed cities stand for the whole UF).
CITY_WEIGHTS: np.ndarray = np.concatenate(
    [np.array([w for _, w in u[3]]) / sum(w for _, w in u[3]) * u[2] for u in _UFS]
)
CITY_WEIGHTS = CITY_WEIGHTS / CITY_WEIGHTS.sum()

CITY_NAME_ARRAY: pa.Array = pa.array(CITY_NAMES, pa.string())
CITY_UF_ARRAY: pa.Array = pa.array([UF_CODES[i] for i in CITY_UF], pa.string())

# Area codes, used to make phone-number PIX keys look real.
DDDS: np.ndarray = np.array(
    [
        11,
        12,
        13,
        14,
        15,
        16,
        17,
        18,
        19,
        21,
        22,
        24,
        27,
        28,
        31,
        32,
        33,
        34,
        35,
        37,
        38,
        41,
        42,
        43,
        44,
        45,
        46,
        47,
        48,
        49,
        51,
        53,
        54,
        55,
        61,
        62,
        63,
        64,
        65,
        66,
        67,
        68,
        69,
        71,
        73,
        74,
        75,
        77,
        79,
        81,
        82,
        83,
        84,
        85,
        86,
        87,
        88,
        89,
        91,
        92,
        93,
        94,
        95,
        96,
        97,
        98,
        99,
    ],
    dtype=np.int64,
)
# COMPE codes of real banks, for TED counterparty accounts.
BANK_CODES: np.ndarray = np.array(
    [1, 33, 104, 237, 341, 260, 77, 336, 212, 756, 748, 422, 70, 41, 208, 623], dtype=np.int64
)

# --- People ------------------------------------------------------------------------------
FEMALE_FIRST_NAMES: tuple[str, ...] = (
    "Maria",
    "Ana",
    "Francisca",
    "Antônia",
    "Adriana",
    "Juliana",
    "Márcia",
    "Fernanda",
    "Patrícia",
    "Aline",
    "Sandra",
    "Camila",
    "Amanda",
    "Bruna",
    "Jéssica",
    "Letícia",
    "Júlia",
    "Luciana",
    "Vanessa",
    "Mariana",
    "Gabriela",
    "Beatriz",
    "Larissa",
    "Rafaela",
    "Carla",
    "Cristina",
    "Débora",
    "Helena",
    "Isabela",
    "Lúcia",
    "Raimunda",
    "Tatiane",
    "Sônia",
)
MALE_FIRST_NAMES: tuple[str, ...] = (
    "José",
    "João",
    "Antônio",
    "Francisco",
    "Carlos",
    "Paulo",
    "Pedro",
    "Lucas",
    "Luiz",
    "Marcos",
    "Luís",
    "Gabriel",
    "Rafael",
    "Daniel",
    "Marcelo",
    "Bruno",
    "Eduardo",
    "Felipe",
    "Raimundo",
    "Rodrigo",
    "Manoel",
    "Mateus",
    "André",
    "Fernando",
    "Fábio",
    "Leonardo",
    "Gustavo",
    "Guilherme",
    "Thiago",
    "Diego",
    "Sebastião",
    "Vinícius",
    "Severino",
)
FIRST_NAMES: tuple[str, ...] = FEMALE_FIRST_NAMES + MALE_FIRST_NAMES
N_FEMALE_FIRST_NAMES = len(FEMALE_FIRST_NAMES)

LAST_NAMES: tuple[str, ...] = (
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Almeida",
    "Lopes",
    "Soares",
    "Fernandes",
    "Vieira",
    "Barbosa",
    "Rocha",
    "Dias",
    "Nascimento",
    "Andrade",
    "Moreira",
    "Nunes",
    "Marques",
    "Machado",
    "Mendes",
    "Freitas",
    "Cardoso",
    "Ramos",
    "Gonçalves",
    "Santana",
    "Teixeira",
    "Araújo",
    "Pinto",
    "Correia",
    "Cavalcanti",
    "Monteiro",
    "Moraes",
    "Batista",
    "Campos",
    "Azevedo",
    "Reis",
    "Barros",
    "Farias",
    "Melo",
    "Castro",
    "Xavier",
)
# Surnames follow a steep frequency curve in Brazil (Silva alone is ~10% of people).
LAST_NAME_WEIGHTS: np.ndarray = 1.0 / np.arange(1, len(LAST_NAMES) + 1) ** 0.9
LAST_NAME_WEIGHTS = LAST_NAME_WEIGHTS / LAST_NAME_WEIGHTS.sum()

PJ_SUFFIXES: tuple[str, ...] = (
    "Comércio Ltda",
    "Serviços ME",
    "Transportes Ltda",
    "Alimentos Eireli",
    "Consultoria ME",
    "Distribuidora Ltda",
    "Materiais de Construção Ltda",
    "Padaria e Confeitaria Ltda",
    "Auto Peças Ltda",
    "Tecnologia Ltda",
    "Representações ME",
    "Construtora Ltda",
)


def ascii_fold(text: str) -> str:
    """'Antônio' -> 'antonio': e-mail PIX keys are plain ASCII."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return folded.lower().replace(" ", "")


FIRST_NAME_ARRAY: pa.Array = pa.array(FIRST_NAMES, pa.string())
LAST_NAME_ARRAY: pa.Array = pa.array(LAST_NAMES, pa.string())
PJ_SUFFIX_ARRAY: pa.Array = pa.array(PJ_SUFFIXES, pa.string())
FIRST_NAME_ASCII: pa.Array = pa.array([ascii_fold(n) for n in FIRST_NAMES], pa.string())
LAST_NAME_ASCII: pa.Array = pa.array([ascii_fold(n) for n in LAST_NAMES], pa.string())
EMAIL_DOMAINS: pa.Array = pa.array(
    [
        "gmail.com",
        "hotmail.com",
        "yahoo.com.br",
        "outlook.com",
        "uol.com.br",
        "bol.com.br",
        "icloud.com",
        "gmail.com",
        "gmail.com",
        "hotmail.com",
    ],
    pa.string(),
)

# --- Customer segments ---------------------------------------------------------------------
SEGMENTS: tuple[str, ...] = ("varejo", "alta_renda", "private", "pj")
SEGMENT_SHARES: np.ndarray = np.array([0.70, 0.18, 0.02, 0.10])
VAREJO, ALTA_RENDA, PRIVATE, PJ = range(4)
# Monthly income (PJ: monthly revenue) is lognormal per segment: median, sigma, floor.
INCOME_MEDIAN: np.ndarray = np.array([2_800.0, 16_000.0, 65_000.0, 25_000.0])
INCOME_SIGMA: np.ndarray = np.array([0.60, 0.40, 0.55, 1.00])
INCOME_FLOOR: np.ndarray = np.array([1_412.0, 9_000.0, 30_000.0, 2_000.0])
RISK_RATINGS: tuple[str, ...] = ("A", "B", "C", "D", "E")
RISK_PROBS: np.ndarray = np.array(
    [
        [0.25, 0.35, 0.25, 0.10, 0.05],
        [0.45, 0.35, 0.15, 0.04, 0.01],
        [0.60, 0.30, 0.08, 0.02, 0.00],
        [0.20, 0.30, 0.30, 0.15, 0.05],
    ]
)
SEGMENT_ARRAY: pa.Array = pa.array(SEGMENTS, pa.string())
RISK_ARRAY: pa.Array = pa.array(RISK_RATINGS, pa.string())

ACCOUNT_TYPES: tuple[str, ...] = ("checking", "savings", "credit_card")
CHECKING, SAVINGS, CREDIT_CARD = range(3)
ACCOUNT_STATUSES: tuple[str, ...] = ("active", "blocked", "closed")
ACTIVE, BLOCKED, CLOSED = range(3)
ACCOUNT_TYPE_ARRAY: pa.Array = pa.array(ACCOUNT_TYPES, pa.string())
ACCOUNT_STATUS_ARRAY: pa.Array = pa.array(ACCOUNT_STATUSES, pa.string())

# --- Transactions ---------------------------------------------------------------------------
TRANSACTION_TYPES: tuple[str, ...] = ("PIX", "DEBIT", "CREDIT", "BOLETO", "TED")
PIX, DEBIT, CREDIT, BOLETO, TED = range(5)
CHANNELS: tuple[str, ...] = ("mobile", "internet_banking", "atm", "pos", "branch")
MOBILE, INTERNET_BANKING, ATM, POS, BRANCH = range(5)
DIRECTIONS: tuple[str, ...] = ("outbound", "inbound")
OUTBOUND, INBOUND = range(2)
STATUSES: tuple[str, ...] = ("approved", "declined")
APPROVED, DECLINED = range(2)
TYPE_ARRAY: pa.Array = pa.array(TRANSACTION_TYPES, pa.string())
CHANNEL_ARRAY: pa.Array = pa.array(CHANNELS, pa.string())
DIRECTION_ARRAY: pa.Array = pa.array(DIRECTIONS, pa.string())
STATUS_ARRAY: pa.Array = pa.array(STATUSES, pa.string())

# Merchant category codes: (mcc, description, group, median ticket in BRL,
# weight among in-store terminals, weight among online merchants).
MCCS: tuple[tuple[int, str, str, float, float, float], ...] = (
    (5411, "Supermercados", "essentials", 120.0, 20.0, 2.0),
    (5300, "Atacadistas", "essentials", 280.0, 3.0, 0.2),
    (5499, "Mercearias e conveniência", "food", 35.0, 10.0, 0.0),
    (5812, "Restaurantes", "food", 75.0, 12.0, 1.0),
    (5814, "Lanchonetes e fast food", "food", 32.0, 14.0, 6.0),
    (5541, "Postos de combustível", "transport", 160.0, 10.0, 0.0),
    (4121, "Táxi e apps de transporte", "transport", 28.0, 0.5, 8.0),
    (4111, "Transporte público", "transport", 12.0, 3.0, 1.0),
    (5912, "Farmácias", "health", 60.0, 9.0, 2.0),
    (8062, "Hospitais e clínicas", "health", 350.0, 0.6, 0.1),
    (5311, "Lojas de departamento", "retail", 180.0, 4.0, 4.0),
    (5651, "Vestuário", "retail", 150.0, 5.0, 3.0),
    (5732, "Eletrônicos", "retail", 600.0, 1.5, 3.0),
    (5999, "Varejo diverso", "retail", 90.0, 4.0, 4.0),
    (5200, "Material de construção", "home", 250.0, 3.0, 0.8),
    (4814, "Telecomunicações", "utilities", 70.0, 0.5, 3.0),
    (4900, "Energia e saneamento", "utilities", 180.0, 0.0, 1.0),
    (4899, "Streaming e TV por assinatura", "digital", 40.0, 0.0, 3.0),
    (5815, "Conteúdo digital", "digital", 25.0, 0.0, 4.0),
    (5816, "Jogos digitais", "digital", 30.0, 0.0, 2.0),
    (5817, "Aplicativos", "digital", 20.0, 0.0, 3.0),
    (7011, "Hotéis", "travel", 450.0, 0.5, 1.5),
    (4511, "Companhias aéreas", "travel", 900.0, 0.0, 1.5),
    (8220, "Educação", "education", 500.0, 0.4, 1.0),
    (5944, "Joalherias", "luxury", 1_200.0, 0.3, 0.3),
    (7995, "Apostas", "high_risk", 50.0, 0.0, 1.5),
    (6051, "Quase-dinheiro e cripto", "high_risk", 300.0, 0.0, 0.4),
)
ATM_MCC = 6011  # cash withdrawal
MCC_CODES: np.ndarray = np.array([m[0] for m in MCCS], dtype=np.int16)
MCC_GROUPS: dict[int, str] = {m[0]: m[2] for m in MCCS} | {ATM_MCC: "cash"}
MCC_DESCRIPTIONS: dict[int, str] = {m[0]: m[1] for m in MCCS} | {ATM_MCC: "Saque em caixa"}
MCC_MEDIAN: np.ndarray = np.array([m[3] for m in MCCS])
MCC_POS_WEIGHT: np.ndarray = np.array([m[4] for m in MCCS])
MCC_ONLINE_WEIGHT: np.ndarray = np.array([m[5] for m in MCCS])
# Where card testers try stolen cards: cheap digital goods with weak checks.
CARD_TESTING_MCCS: tuple[int, ...] = (4899, 5815, 5816, 5817, 5999, 7995)

# --- Spelling variants (raw value -> canonical) ----------------------------------------
# Keys are the exact raw strings written (leading/trailing blanks included: a CSV seed
# may strip them, so normalize with lower(trim(...)) as well as by exact match).
TYPE_VARIANTS: dict[str, tuple[str, ...]] = {
    "PIX": ("pix", " Pix ", "Pix", "PIX ", "pix "),
    "DEBIT": ("débito", "DEBITO", "debito", "Débito", "DÉBITO", "debit"),
    "CREDIT": ("credito", "Crédito", "CREDITO", "crédito", "credit", "CRÉDITO"),
    "BOLETO": ("Boleto Bancario", "boleto", "Boleto", "BOLETO BANCÁRIO", "boleto bancário"),
    "TED": ("ted", "Ted", "TED ", " ted", "Transferência TED"),
}
CHANNEL_VARIANTS: dict[str, tuple[str, ...]] = {
    "mobile": ("app", "MOBILE", "Mobile", "celular", "aplicativo", "mobile_app"),
    "internet_banking": (
        "Internet Banking",
        "ib",
        "IB",
        "internet banking",
        "INTERNET_BANKING",
        "internet-banking",
    ),
    "atm": ("caixa eletronico", "Caixa Eletrônico", "ATM", "caixa_eletronico", "Atm"),
    "pos": ("maquininha", "POS", "Pos", "Maquininha", "pos "),
    "branch": ("agencia", "Agência", "BRANCH", "agência", "Branch"),
}
TRANSACTION_TYPE_SPELLINGS: dict[str, str] = {t: t for t in TRANSACTION_TYPES} | {
    variant: canonical for canonical, vs in TYPE_VARIANTS.items() for variant in vs
}
CHANNEL_SPELLINGS: dict[str, str] = {c: c for c in CHANNELS} | {
    variant: canonical for canonical, vs in CHANNEL_VARIANTS.items() for variant in vs
}
# Types no normalization maps: the processed layer rejects them as unknown_transaction_type.
UNKNOWN_TRANSACTION_TYPES: tuple[str, ...] = ("ESTORNO", "XPTO", "TARIFA", "DOC", "CASHBACK")


def folded_spellings(mapping: dict[str, str]) -> dict[str, str]:
    """The same map keyed by lower(trim(raw)): what to join on if a CSV seed loses the
    blanks of keys like ' Pix '. Raises if folding would make two canonicals collide."""
    folded: dict[str, str] = {}
    for raw, canonical in mapping.items():
        key = raw.strip().lower()
        if folded.setdefault(key, canonical) != canonical:
            raise ValueError(f"spelling {raw!r} folds onto another canonical value")
    return folded


def _check_spellings() -> None:
    """Guards the contract: every canonical value is reachable, folding is unambiguous,
    and no unknown type is a spelling of a known one (or it would not be rejected)."""
    for mapping, canon in (
        (TRANSACTION_TYPE_SPELLINGS, TRANSACTION_TYPES),
        (CHANNEL_SPELLINGS, CHANNELS),
    ):
        if set(mapping.values()) != set(canon):
            raise ValueError("spelling map does not cover the canonical values")
        folded_spellings(mapping)
    unknown = {k.strip().lower() for k in UNKNOWN_TRANSACTION_TYPES}
    if unknown & set(folded_spellings(TRANSACTION_TYPE_SPELLINGS)):
        raise ValueError("an unknown transaction type is also a known spelling")


_check_spellings()

# --- Raw text vocabularies ---------------------------------------------------------------
# Every value the generator ever writes in a low-cardinality transactions column, once
# each. Those columns are built as Arrow dictionary arrays over these (small integer
# indices instead of strings): no per-row string is materialized, a fault that misspells
# a type only rewrites an index, and the Parquet writer stores the dictionary page as is
# instead of hashing every row. Readers still see text. Canonical values come first, so a
# canonical code (ref.PIX, ref.MOBILE...) is its own index.
TYPE_VOCABULARY: tuple[str, ...] = (
    TRANSACTION_TYPES
    + tuple(v for t in TRANSACTION_TYPES for v in TYPE_VARIANTS[t])
    + UNKNOWN_TRANSACTION_TYPES
)
CHANNEL_VOCABULARY: tuple[str, ...] = CHANNELS + tuple(
    v for c in CHANNELS for v in CHANNEL_VARIANTS[c]
)
ATM_MCC_CODE = len(MCCS)  # index of the ATM's MCC in MCC_VOCABULARY (after the merchant ones)
MCC_VOCABULARY: tuple[str, ...] = (*(f"{m[0]:04d}" for m in MCCS), f"{ATM_MCC:04d}")
for _vocabulary in (TYPE_VOCABULARY, CHANNEL_VOCABULARY, MCC_VOCABULARY, CITY_NAMES, UF_CODES):
    if len(set(_vocabulary)) != len(_vocabulary):
        raise ValueError("a raw vocabulary lists a value twice")
TYPE_VOCABULARY_ARRAY: pa.Array = pa.array(TYPE_VOCABULARY, pa.string())
CHANNEL_VOCABULARY_ARRAY: pa.Array = pa.array(CHANNEL_VOCABULARY, pa.string())
MCC_VOCABULARY_ARRAY: pa.Array = pa.array(MCC_VOCABULARY, pa.string())
UF_ARRAY: pa.Array = pa.array(UF_CODES, pa.string())

REPORT_CHANNELS: tuple[str, ...] = ("chargeback", "med", "customer_contact")
CHARGEBACK, MED, CUSTOMER_CONTACT = range(3)
REPORT_CHANNEL_ARRAY: pa.Array = pa.array(REPORT_CHANNELS, pa.string())
