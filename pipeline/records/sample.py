"""The auditor's spot check (issue 12, item 2): which records to read, picked so that anyone can
pick them again.

`pick(records, n, seed)` draws n records without replacement, weighted towards what an auditor
most wants to see: high risk counts 4, medium 2, low 1, and an emergency change three times its
risk's weight (it skipped the window and the approval wait). The draw is Efraimidis-Spirakis
(each record gets the key u ** (1 / weight), u uniform from a random.Random seeded with the text
of the seed; the n largest keys win), over the records sorted by id, so the same seed and the same
records give the same sample on any machine and Python version that keeps random.Random's
sequence (it is documented as stable for a given seed).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.model import RiskLevel
from pipeline.records.record import ChangeRecord

RISK_WEIGHT = {RiskLevel.LOW: 1, RiskLevel.MEDIUM: 2, RiskLevel.HIGH: 4}
EMERGENCY_FACTOR = 3


def weight(record: ChangeRecord) -> int:
    return RISK_WEIGHT.get(record.risk, 1) * (EMERGENCY_FACTOR if record.emergency else 1)


@dataclass(frozen=True)
class Picked:
    record: ChangeRecord
    weight: int


def pick(records: Iterable[ChangeRecord], n: int, seed: str) -> list[Picked]:
    pool = sorted(records, key=lambda r: r.id)
    rng = random.Random(f"dmarcops-sample:{seed}")
    keyed = [(rng.random() ** (1 / weight(r)), r) for r in pool]
    keyed.sort(key=lambda kr: kr[0], reverse=True)
    return sorted((Picked(r, weight(r)) for _, r in keyed[:n]), key=lambda p: p.record.id)
