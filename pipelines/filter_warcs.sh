#!/usr/bin/env bash
# The RefinedWeb filter stage with the paper's settings over local WARC files.
#
#   pipelines/filter_warcs.sh 'crawl/*.warc.gz' out/ [extra refinedweb run flags...]
#
# Needs the UT1 blocklist (`refinedweb blocklist fetch`) or `--set url_filter.blocklist=PATH`.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 INPUT_GLOB OUTPUT_DIR [refinedweb run flags...]" >&2
    exit 2
fi
input="$1"; output="$2"; shift 2
exec ${REFINEDWEB:-refinedweb} run --stage filter --input "$input" --output "$output" "$@"
