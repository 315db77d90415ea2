#!/usr/bin/env bash
# Create the datatrove baseline venv (default /work/main/.venv-bench-datatrove) with pinned
# versions, separate from the project venv.  Needs only PyPI (pip); no other download.
#
#   bash benchmarks/setup_datatrove_venv.sh            # (re)creates .venv-bench-datatrove
#   VENV=/tmp/x PYTHON=python3.11 bash benchmarks/setup_datatrove_venv.sh
#
# The pins are in benchmarks/requirements-datatrove.txt (pip freeze of a working venv;
# the top-level requests and why each is there are at the top of that file).
# Run the baseline afterwards with:
#   $VENV/bin/python benchmarks/datatrove_baseline.py --warc benchmarks/data/bench.warc.gz
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv-bench-datatrove}"
PYTHON="${PYTHON:-python3.11}"
REQS="$ROOT/benchmarks/requirements-datatrove.txt"

"$PYTHON" - <<'EOF'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"need CPython 3.11 (the pins were made with 3.11.7), got {sys.version.split()[0]}")
EOF

if [ -e "$VENV" ] && [ "${RECREATE:-1}" = "1" ]; then
    rm -rf "$VENV"
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip==26.3"
"$VENV/bin/python" -m pip install --quiet -r "$REQS"

# smoke test: the pieces the baseline needs import, and fastText predict works under numpy 2
"$VENV/bin/python" - <<'EOF'
import numpy
import datatrove
from importlib.metadata import version
from datatrove.pipeline.readers import WarcReader  # noqa: F401
from datatrove.pipeline.extractors import Trafilatura  # noqa: F401
from datatrove.pipeline.filters import (  # noqa: F401
    GopherQualityFilter, GopherRepetitionFilter, LanguageFilter, URLFilter,
)
from datatrove.pipeline.writers import ParquetWriter  # noqa: F401
import fsspec.implementations.http  # noqa: F401  (needs aiohttp)
import spacy
spacy.blank("en")
print(f"datatrove {version('datatrove')}, trafilatura {version('trafilatura')}, "
      f"fasttext-numpy2-wheel {version('fasttext-numpy2-wheel')}, spacy {spacy.__version__}, "
      f"numpy {numpy.__version__}: OK")
EOF
echo "venv ready: $VENV"
