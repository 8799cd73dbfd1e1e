"""Analysis of finished runs: statistics over a table of scored episodes."""

from emotau.analysis.stats import (
    DEFAULT_ICC,
    compare_variants,
    estimate_icc,
    holm,
    mcnemar_exact,
    minimum_detectable_effect,
    paired_permutation_test,
    pass_hat_k,
    pass_k,
    summarize_variants,
)

__all__ = [
    "DEFAULT_ICC",
    "compare_variants",
    "estimate_icc",
    "holm",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "paired_permutation_test",
    "pass_hat_k",
    "pass_k",
    "summarize_variants",
]
