#!/usr/bin/env bash
# Install zoo with its test extras and run the whole test suite (the README's second command).
#
# The parity tests compare zoo's networks with PaddleSeg's own code. PaddleSeg is not a dependency of zoo (it pins
# an opencv that breaks on numpy 2), so it is unpacked, without its dependencies, into a private folder used only
# by those tests, next to the few modules it imports (six, requests, scikit-learn, prettytable). The stamp is only
# written once the oracle really imports. If it cannot be installed, the parity tests skip and the run FAILS
# (tests/conftest.py) unless ZOO_TEST_NO_PADDLESEG=1 says the oracle is knowingly unavailable.
set -euo pipefail
cd "$(dirname "$0")/.."

# ray: zoo run --engine ray; quantize, openvino: zoo quantize and the OpenVINO backend; serve, serve-ray: zoo serve
python -m pip install -q -e '.[test,ray,quantize,openvino,serve,serve-ray]'

# the report tests open each report's index.html in a real headless browser (Debian's chromium), not just the file
if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
            || echo "error: could not install chromium; the report page tests will fail" >&2
    fi
fi

ref="${ZOO_PADDLESEG_REF:-$PWD/.cache/paddleseg-ref}"
oracle_path="$ref/pkg${PATHSEP:-:}$ref/deps"
# what the parity tests use: the package, its config/builder machinery and its metrics (which import sklearn)
check_oracle() {
    ZOO_TEST_PADDLESEG_PATH="$oracle_path" python - <<'PY'
import os, sys
sys.path += [p for p in os.environ["ZOO_TEST_PADDLESEG_PATH"].split(os.pathsep) if p]  # appended, as conftest does
import paddleseg
from paddleseg.cvlibs import Config, manager
from paddleseg.cvlibs.builder import SegBuilder
import paddleseg.utils.metrics
assert "DANet" in manager.MODELS.components_dict and "ResNet50_vd" in manager.BACKBONES.components_dict
PY
}
# a stamp from an older script (without six/requests) is re-checked, not trusted
if [ ! -f "$ref/.ok" ] || ! check_oracle 2>/dev/null; then
    rm -rf "$ref"
    if python -m pip install -q --no-deps --target "$ref/pkg" "paddleseg==2.8.0" \
        && python -m pip install -q --target "$ref/deps" scikit-learn prettytable six requests \
        && check_oracle; then
        touch "$ref/.ok"
    else
        echo "error: could not install or import the PaddleSeg reference; the 'paddleseg' parity tests will skip," \
             "which fails the run unless ZOO_TEST_NO_PADDLESEG=1 is set" >&2
    fi
fi
if [ -f "$ref/.ok" ]; then
    export ZOO_TEST_PADDLESEG_PATH="$oracle_path"
fi

# Everything runs by default (CI included). --quick leaves out the tests marked `slow` (the end-to-end runs of every
# architecture, the demo, the bundle round trip): `bash scripts/test.sh --quick [PYTEST ARGS...]`.
if [ "${1:-}" = "--quick" ]; then
    shift
    python -m pytest -q -m "not slow" "$@"
else
    python -m pytest -q "$@"
fi
