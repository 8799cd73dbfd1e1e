"""Analysis of finished runs (see ``docs/analysis.md``).

This package exports the statistics over a table of scored episodes. The other public modules
are imported on their own: ``report`` (:func:`~emotau.analysis.report.analyze`), ``compare``,
``tables`` (episode and turn tables, Parquet), ``conversation`` (failure taxonomy, agent
behaviour), ``emotion`` (the manipulation check) and ``labellers`` (emotion labellers, entry-point
group ``emotau.labellers``).
"""

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
