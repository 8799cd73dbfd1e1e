"""What a run is: :class:`RunSpec`, validated before anything runs, and its identity (the
fields that change results), hashed into the run directory."""

from emotau.spec._spec import (
    DEFAULT_VARIANTS,
    ResolvedSpec,
    RunSpec,
    build_spec,
    diff_identity,
    domain_digest,
    load_config_file,
    prompts_digest,
    spec_hash,
)

__all__ = [
    "DEFAULT_VARIANTS",
    "ResolvedSpec",
    "RunSpec",
    "build_spec",
    "diff_identity",
    "domain_digest",
    "load_config_file",
    "prompts_digest",
    "spec_hash",
]
