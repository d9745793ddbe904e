"""The option parsers: τ grids, draws, hyper-parameters, name lists (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unlearn_audit.cli.parsing import parse_draws, parse_hparams, parse_names, parse_taus
from unlearn_audit.errors import ConfigError

small = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(small, small, st.integers(min_value=1, max_value=50))
def test_a_range_is_an_inclusive_grid(start, stop, n):
    taus = parse_taus(f"{start!r}:{stop!r}:{n}")
    assert taus is not None and len(taus) == n and taus[0] == start
    assert n == 1 or taus[-1] == pytest.approx(stop)


@given(st.lists(small, min_size=1, max_size=10))
def test_a_list_reads_back(values):
    assert parse_taus(",".join(repr(v) for v in values)) == tuple(values)


def test_fractions_and_defaults():
    assert parse_taus(None) is None
    assert parse_taus("0,8/255") == (0.0, 8 / 255)
    assert parse_taus("0:8/255:3") == pytest.approx((0.0, 4 / 255, 8 / 255))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("0:x:3", "'x' is not a number"), ("0:1", "start:stop:n"), ("0:1:2.5", "integer"), ("0:1:0", "at least 1"),
     ("1/0", "not a number")],
)  # fmt: skip
def test_bad_taus_name_the_option(text, fragment):
    with pytest.raises(ConfigError, match="--taus") as caught:
        parse_taus(text)
    assert fragment in str(caught.value)


def test_draws():
    assert parse_draws(None) == (None, ())
    assert parse_draws(["100", "pgd=10", "fgsm = 4"]) == (100, (("pgd", 10), ("fgsm", 4)))
    with pytest.raises(ConfigError, match="--draws 'pgd=x'"):
        parse_draws(["pgd=x"])
    assert parse_draws(["auto", "pgd=10"]) == ("auto", (("pgd", 10),))
    assert parse_draws(["AUTO", "auto"]) == ("auto", ())
    with pytest.raises(ConfigError, match="--draws 100 and --draws auto: give one default"):
        parse_draws(["100", "auto"])
    with pytest.raises(ConfigError, match="--draws 'pgd=auto'"):
        parse_draws(["pgd=auto"])


def test_hparams_parse_as_json_where_they_can():
    assert parse_hparams(["lr=0.01", "k=3", "name=abc", "layers=[1, 2]", "use-bias=true"]) == {
        "lr": 0.01, "k": 3, "name": "abc", "layers": [1, 2], "use_bias": True,
    }  # fmt: skip
    with pytest.raises(ConfigError, match="--param 'lr'"):
        parse_hparams(["lr"])
    with pytest.raises(ConfigError):
        parse_hparams(["=3"])


def test_names():
    assert parse_names(" gaussian, fgsm,,") == ("gaussian", "fgsm")
