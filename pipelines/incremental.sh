#!/usr/bin/env bash
# Incremental job (run it weekly): every CommonCrawl crawl that ROOT has not processed yet, oldest first,
# through filter -> dedup -> report, into ROOT/<crawl id>/. The seen-URL store ROOT/_url_seen/ carries
# the URLs kept from earlier crawls (one contribution per crawl), so a URL is kept once across dumps
# (RW §3.3). A crawl whose run crashed has no manifest yet: the next run resumes it, and a crawl re-run
# replaces its own contribution.
#
#   pipelines/incremental.sh s3://bucket/refinedweb [--set key=value ...]
#
# COLLINFO: where the list of crawls comes from (default CommonCrawl's collinfo.json; "" = list
# crawl-data/ under fetch.base_uri). LIMIT: at most this many new crawls per run (default: all).
set -euo pipefail
root="${1:?usage: incremental.sh ROOT [refinedweb run flags...]}"
shift
root="${root%/}"
collinfo="${COLLINFO-https://index.commoncrawl.org/collinfo.json}"
sets=()
run_flags=("$@")
for ((i = 0; i < ${#run_flags[@]}; i++)); do       # --set / --config also configure the crawl listing
    case "${run_flags[$i]}" in
        --set|--config) sets+=("${run_flags[$i]}" "${run_flags[$((i + 1))]}"); i=$((i + 1)) ;;
    esac
done
crawls_args=(--output "$root" --pending)
[ -n "$collinfo" ] && crawls_args+=(--collinfo "$collinfo")
listing="$(${REFINEDWEB:-refinedweb} crawls "${crawls_args[@]}" "${sets[@]}")"      # a failure here stops the job (set -e)
mapfile -t todo < <(printf '%s\n' "$listing" | sed '/^$/d')
[ -n "${LIMIT:-}" ] && todo=("${todo[@]:0:$LIMIT}")
echo "incremental: ${#todo[@]} crawl(s) to process: ${todo[*]:-none}" >&2
for crawl in "${todo[@]}"; do
    [ -n "$crawl" ] || continue
    ${REFINEDWEB:-refinedweb} run --stage all --input "cc:$crawl" --output "$root/$crawl" \
        --set "dedup.url.seen=$root/_url_seen/" "${run_flags[@]}"
    ${REFINEDWEB:-refinedweb} report "$root/$crawl"
done
