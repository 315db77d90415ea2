#!/usr/bin/env bash
# Full-crawl job: one CommonCrawl crawl through filter -> dedup -> report.
#
#   pipelines/full_crawl.sh CC-MAIN-2023-06 s3://bucket/refinedweb/CC-MAIN-2023-06 [...]
#
# Inside AWS add `--set fetch.base_uri=s3://commoncrawl/`; re-running the same command resumes a crashed run.
set -euo pipefail
crawl="${1:?usage: full_crawl.sh CRAWL_ID OUTPUT [refinedweb run flags...]}"
output="${2:?usage: full_crawl.sh CRAWL_ID OUTPUT [refinedweb run flags...]}"
shift 2
${REFINEDWEB:-refinedweb} run --stage all --input "cc:$crawl" --output "$output" "$@"
${REFINEDWEB:-refinedweb} report "$output"
${REFINEDWEB:-refinedweb} stats "$output"
