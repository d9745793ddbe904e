"""Seed commitments and the binding digest (unlearn_audit.commitment)."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearn_audit.commitment import COMMITMENT_DOMAIN, SecretSeed, binding, canonical_sha256, seed_commitment
from unlearn_audit.config import AuditConfig
from unlearn_audit.errors import ConfigError, InputError


def test_draw_gives_128_bits_and_a_fresh_salt():
    seeds = [SecretSeed.draw() for _ in range(64)]
    assert len({s.value for s in seeds}) == 64 and len({s.salt for s in seeds}) == 64
    assert max(s.value for s in seeds).bit_length() > 120  # 128-bit draws: the largest of 64 is near 2**128


def test_commitment_is_sha256_of_domain_salt_and_seed():
    seed = SecretSeed(12345, bytes(range(32)))
    expected = hashlib.sha256(COMMITMENT_DOMAIN + bytes(range(32)) + (12345).to_bytes(16, "big")).hexdigest()
    assert seed.commitment == expected
    assert SecretSeed(12345, bytes(32)).commitment != expected  # the salt counts
    assert hashlib.sha256((12345).to_bytes(16, "big")).hexdigest() != expected  # the domain prefix counts


@settings(max_examples=50, deadline=None)
@given(value=st.integers(0, 2**128 - 1), salt=st.binary(min_size=32, max_size=32))
def test_round_trip_and_nothing_of_the_seed_in_repr(tmp_path_factory, value, salt):
    seed = SecretSeed(value, salt)
    path = tmp_path_factory.mktemp("seed") / "s.seed"
    seed.write(path)
    assert SecretSeed.read(path) == seed and seed_commitment(value, salt) == seed.commitment
    text = repr(seed) + str(seed) + repr(AuditConfig().with_secret_seed(seed))
    assert f"{value:032x}" not in text and (str(value) not in text or value < 10**6)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_refuses_an_existing_file(tmp_path):
    path = tmp_path / "s.seed"
    path.write_text("keep me")
    with pytest.raises(ConfigError, match="never overwritten"):
        SecretSeed.draw().write(path)
    assert path.read_text() == "keep me"


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not JSON"),
        ('{"format": "something else"}', "not a seed file"),
        ('{"format": "unlearn-audit secret seed", "seed": "zz", "salt": "00"}', "not hexadecimal"),
        ('{"format": "unlearn-audit secret seed", "seed": "01", "salt": "00"}', "salt must be 32 bytes"),
    ],
)
def test_read_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.seed"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        SecretSeed.read(path)


def test_read_rejects_an_edited_seed(tmp_path):
    path = tmp_path / "s.seed"
    SecretSeed(5, bytes(32)).write(path)
    doc = json.loads(path.read_text())
    doc["seed"] = f"{6:032x}"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="does not match its seed and salt"):
        SecretSeed.read(path)


def test_secret_config_keeps_the_seed_out_of_its_json():
    seed = SecretSeed.draw()
    config = AuditConfig().with_secret_seed(seed)
    doc = config.to_dict()
    assert doc["seed"] is None and doc["seed_commitment"] == seed.commitment
    assert f"{seed.value:032x}" not in json.dumps(doc) and str(seed.value) not in json.dumps(doc)
    assert AuditConfig.from_dict(json.loads(json.dumps(doc)), seed) == config
    assert "seed_commitment" not in AuditConfig(seed=3).to_dict()
    assert AuditConfig(seed=3).library_seed("panel") == 3  # public seeds behave as before
    assert config.library_seed("panel") < 2**31 and config.library_seed("panel") != config.library_seed("x")


def test_binding_digest_covers_every_field():
    args = ({"model": "a" * 64}, {"alpha": 0.05}, {"draws": 10}, "1.0", {"value": 0}, "pass")
    base = binding(*args)
    assert base["policy_sha256"] == canonical_sha256({"alpha": 0.05})
    for i, changed in enumerate(
        [{"model": "b" * 64}, {"alpha": 0.06}, {"draws": 11}, "1.1", {"value": 1}, "inconclusive"]
    ):
        other = list(args)
        other[i] = changed
        assert binding(*other)["digest"] != base["digest"], i


def test_jittered_taus_draw_one_tau_per_stratum_inside_the_range():
    from unlearn_audit.policy import Policy

    base = AuditConfig(taus=tuple(i * 0.003 for i in range(11)))
    seeds = [SecretSeed(v, bytes(32)) for v in (1, 2)]
    first, second = (base.with_secret_seed(s).with_jittered_taus() for s in seeds)
    assert first.jitter_taus and first.taus[0] == 0.0 and len(first.taus) == 11
    width = 0.03 / 10
    for i, tau in enumerate(first.taus[1:]):
        assert i * width <= tau <= (i + 1) * width  # one draw in each stratum
    assert first.taus != second.taus != base.taus
    assert base.with_secret_seed(seeds[0]).with_jittered_taus().taus == first.taus  # a function of the seed
    assert AuditConfig.from_dict(json.loads(json.dumps(first.to_dict())), seeds[0]) == first
    with pytest.raises(ConfigError, match="already drawn"):
        first.with_jittered_taus()
    clipped = AuditConfig(taus=base.taus, policy=Policy(tau_min=0.01, tau_max=0.02)).with_jittered_taus()
    assert all(0.01 <= t <= 0.02 for t in clipped.taus) and len(clipped.taus) == 11
    with pytest.raises(ConfigError, match="no interval"):
        AuditConfig(taus=(0.01,)).with_jittered_taus()
