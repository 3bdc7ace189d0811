"""Run every fuzz target briefly, so they stay importable and green."""

from __future__ import annotations

from tests.fuzz import fuzz_rtcp, fuzz_rtp, fuzz_stun
from tests.fuzz._harness import run
from tests.helpers.vectors import VECTORS


def test_fuzz_targets_accept_their_seed_vectors() -> None:
    """Every vector file, valid or invalid, satisfies its target's invariant."""
    for name, target in (("rtp", fuzz_rtp), ("rtcp", fuzz_rtcp), ("stun", fuzz_stun)):
        for path in sorted((VECTORS / name).glob("*.bin")):
            target.target(path.read_bytes())


def test_fuzz_targets_smoke() -> None:
    """A couple hundred generated inputs per target."""
    run(fuzz_rtp.target, fuzz_rtp.SEEDS, 200)
    run(fuzz_rtcp.target, fuzz_rtcp.SEEDS, 200)
    run(fuzz_stun.target, fuzz_stun.SEEDS, 200)
