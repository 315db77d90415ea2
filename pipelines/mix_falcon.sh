#!/usr/bin/env bash
# Mixing job: RefinedWeb output + curated corpora -> training shards, with the Falcon-40B (default) or
# Falcon-7B mixture. Edit the `input:` of each source in the config first (local paths or s3://).
#   pipelines/mix_falcon.sh s3://bucket/falcon-40b-mix/ [configs/mix/falcon-7b.yaml]
# Re-running the same command after a crash resumes (finished shards are kept); --overwrite starts over.
set -euo pipefail
output="${1:?usage: mix_falcon.sh OUTPUT [CONFIG] [refinedweb mix options...]}"
config="${2:-configs/mix/falcon-40b.yaml}"
shift $(( $# >= 2 ? 2 : 1 ))
${REFINEDWEB:-refinedweb} mix --config "$config" --output "$output" "$@"
${REFINEDWEB:-refinedweb} stats "$output"
