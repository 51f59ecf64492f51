#!/usr/bin/env bash
# Install zoo with its test extras and run the whole test suite (the README's second command).
#
# The parity tests compare zoo's networks with PaddleSeg's own code. PaddleSeg is not a dependency of zoo (it pins
# an opencv that breaks on numpy 2), so it is unpacked, without its dependencies, into a private folder used only
# by those tests. If that cannot be installed, they are reported as skipped and everything else still runs.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q -e '.[test,quantize,openvino]'  # quantize, openvino: tests of zoo quantize and the OpenVINO backend

ref="${ZOO_PADDLESEG_REF:-$PWD/.cache/paddleseg-ref}"
if [ ! -f "$ref/.ok" ]; then
    rm -rf "$ref"
    if python -m pip install -q --no-deps --target "$ref/pkg" "paddleseg==2.8.0" \
        && python -m pip install -q --target "$ref/deps" scikit-learn prettytable; then
        touch "$ref/.ok"
    else
        echo "note: could not install the PaddleSeg reference; the 'paddleseg' parity tests will be skipped" >&2
    fi
fi
if [ -f "$ref/.ok" ]; then
    export ZOO_TEST_PADDLESEG_PATH="$ref/pkg${PATHSEP:-:}$ref/deps"
fi

python -m pytest -q "$@"
