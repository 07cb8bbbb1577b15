from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fidele.kit import codes


def test_generated_code_shape_and_check() -> None:
    code = codes.generate()
    assert len(code.replace("-", "")) == 12
    assert codes.is_well_formed(code)
    assert codes.is_well_formed(code.lower().replace("-", " "))
    assert codes.is_well_formed(codes.generate(prefix="GC-"), prefix="GC-")


def test_the_zero_z_swap_is_the_known_blind_spot() -> None:
    body = "0Z" + "Q" * 9
    code = body + codes.check_symbol(body)
    assert codes.is_well_formed("Z0" + code[2:])


def test_look_alikes_are_read_as_digits() -> None:
    assert codes.normalise("o1-il") == "0111"


@given(st.integers(0, 10**6), st.integers(0, 10), st.integers(1, 31))
def test_single_substitution_is_caught(seed: int, pos: int, shift: int) -> None:
    import random

    rng = random.Random(seed)
    body = "".join(rng.choice(codes.ALPHABET) for _ in range(11))
    code = body + codes.check_symbol(body)
    i = pos % len(code)
    wrong = codes.ALPHABET[(codes.ALPHABET.index(code[i]) + shift) % 32]
    assert not codes.is_well_formed(code[:i] + wrong + code[i + 1 :])


@given(st.integers(0, 10**6), st.integers(0, 10))
def test_adjacent_swap_is_caught(seed: int, pos: int) -> None:
    import random

    rng = random.Random(seed)
    body = "".join(rng.choice(codes.ALPHABET) for _ in range(11))
    code = body + codes.check_symbol(body)
    i = pos % (len(code) - 1)
    if code[i] == code[i + 1] or {code[i], code[i + 1]} == {"0", "Z"}:
        return  # a no-op swap, and the one pair Luhn mod N is blind to
    swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
    assert not codes.is_well_formed(swapped)
