"""Command line: `refinedweb run|mix|tokenize|inspect|submit|status|logs|report|stats|crawls|blocklist …`. User mistakes print
one line and exit 2; a run stopped by a failure that a re-run resumes prints one line and exits 1."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from .errors import RerunNeeded, UserError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + message by default)
        self.exit(EXIT_USAGE, f"refinedweb: error: {message} (see --help)\n")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{value}'") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {number}")
    return number


RAY_ADDRESS_HELP = ("a Ray cluster to join: auto, HOST:6379 or ray://HOST:10001; `local` forces embedded Ray "
                    "(default: the cluster of RAY_ADDRESS when set, as inside a Ray job, else embedded Ray)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="refinedweb", description="RefinedWeb pipeline: CommonCrawl WARC -> filtered, deduplicated Parquet.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run pipeline stages over inputs")
    run.add_argument("--config", help="YAML config (default: the packaged refinedweb.yaml, the paper's settings)")
    run.add_argument("--stage", default="all", metavar="STAGE",
                     help="filter (WARC -> filtered/), dedup (Parquet -> dedup/), all (both; default), or document "
                          "stages to run over existing Parquet with a text column, comma-separated "
                          "(e.g. quality,mypkg.my_stage -> OUTPUT/<last stage>/)")
    run.add_argument("--input", nargs="+", required=True, metavar="URI",
                     help="WARC/ARC files, directories, globs, s3://…, http(s)://…, cc:CRAWL-ID, *.paths.gz listings")
    run.add_argument("--output", required=True, metavar="URI", help="a local directory or s3://bucket/prefix/")
    run.add_argument("--workers", type=_positive_int, help="Ray CPUs to use (default: all cores)")
    run.add_argument("--ray-address", help=RAY_ADDRESS_HELP)
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="override a config key, e.g. --set langid.threshold=0.7 (repeatable)")
    run.add_argument("--limit", type=_positive_int, help="take only the first N input files")
    run.add_argument("--progress", choices=["auto", "bar", "plain", "json", "off"], default="auto",
                     help="progress display: a live bar (default on a terminal), plain lines (default otherwise), "
                          "JSON lines for batch jobs (all driver logs become JSON), or off")
    run.add_argument("--overwrite", action="store_true",
                     help="delete this stage's earlier output and start over (default: resume it, skipping "
                          "finished work; a different config is refused)")

    mix = sub.add_parser("mix", help="mix sources (e.g. RefinedWeb + curated corpora) into training shards")
    mix.add_argument("--config", required=True, help="a YAML file with a 'mix:' section (see configs/mix/)")
    mix.add_argument("--output", required=True, metavar="URI", help="a local directory or s3://bucket/prefix/")
    mix.add_argument("--workers", type=_positive_int, help="Ray CPUs to use (default: all cores)")
    mix.add_argument("--ray-address", help=RAY_ADDRESS_HELP)
    mix.add_argument("--overwrite", action="store_true", help="delete an earlier mix in OUTPUT and start over")
    mix.add_argument("--progress", choices=["auto", "bar", "plain", "json", "off"], default="auto",
                     help="log format: JSON lines for batch jobs, otherwise plain")

    tok = sub.add_parser("tokenize", help="tokenize documents (Parquet or JSONL) into Megatron or nanotron shards")
    tok.add_argument("--input", nargs="+", required=True, metavar="URI",
                     help="Parquet or JSONL (.jsonl[.gz|.zst]) files, folders or globs, local or s3:// (e.g. OUT/mix)")
    tok.add_argument("--output", required=True, metavar="URI", help="writes OUTPUT/tokenized/ (local or s3://)")
    tok.add_argument("--tokenizer", help="gpt2, or a HF tokenizer.json (file or folder, local or s3://); "
                                         "nothing is downloaded (default: tokenize.tokenizer)")
    tok.add_argument("--format", choices=["megatron", "nanotron"], help="default: tokenize.format (megatron)")
    tok.add_argument("--seed", type=int, help="the shuffle's seed (default: tokenize.seed)")
    tok.add_argument("--no-shuffle", action="store_true", help="keep the input order (default: a seeded random "
                                                               "order across the whole input)")
    tok.add_argument("--config", help="YAML config (for tokenize.*, run.*, fetch.*, s3.*)")
    tok.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    tok.add_argument("--workers", type=_positive_int, help="Ray CPUs to use (default: all cores)")
    tok.add_argument("--ray-address", help=RAY_ADDRESS_HELP)
    tok.add_argument("--limit", type=_positive_int, help="take only the first N input files")
    tok.add_argument("--overwrite", action="store_true", help="delete an earlier OUTPUT/tokenized/ and start over")
    tok.add_argument("--progress", choices=["auto", "bar", "plain", "json", "off"], default="auto",
                     help="log format: JSON lines for batch jobs, otherwise plain")

    crawls = sub.add_parser("crawls", help="list CommonCrawl crawls, or (--pending) those OUTPUT has not processed yet")
    crawls.add_argument("--output", metavar="ROOT", help="the root holding one output folder per crawl id")
    crawls.add_argument("--pending", action="store_true", help="only crawls without ROOT/<id>/dedup/.refinedweb/manifest.json")
    crawls.add_argument("--collinfo", help="a collinfo.json (URL or path); default: list crawl-data/ under fetch.base_uri")
    crawls.add_argument("--config", help="YAML config (for fetch.* and s3.*)")
    crawls.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")

    submit = sub.add_parser("submit", help="submit a refinedweb command or pipeline script as a Ray job")
    submit.add_argument("--address", help="the Ray Jobs API of the cluster's head (default http://127.0.0.1:8265)")
    submit.add_argument("--no-install", action="store_true",
                        help="the cluster's image already has refinedweb (no upload, no install)")
    submit.add_argument("--wait", action="store_true", help="wait for the job; exit 0 only if it succeeded")
    submit.add_argument("job_command", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                        help="e.g. -- run --input … --output s3://…, or -- bash pipelines/incremental.sh …")
    for name, text in (("status", "a submitted job's status"), ("logs", "a submitted job's logs")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("job_id", metavar="JOB_ID")
        cmd.add_argument("--address", help="the Ray Jobs API of the cluster's head (default http://127.0.0.1:8265)")

    report = sub.add_parser("report", help="report.html and funnel.png of a run (funnel, drop reasons, languages, lengths)")
    report.add_argument("output", metavar="OUTPUT", help="the --output of a run (local or s3://)")

    insp = sub.add_parser("inspect", help="sample documents of an output folder (filtered, dropped, dedup, mix, "
                                          "tokenized, a document stage's), paged in a terminal")
    insp.add_argument("path", metavar="PATH", help="an output root or one of its stage folders (local or s3://)")
    insp.add_argument("--n", type=_positive_int, default=5, help="documents to show (default 5)")
    insp.add_argument("--seed", type=int, default=0, help="which sample (default 0)")
    insp.add_argument("--reason", help="dropped/: only this drop reason (e.g. too_few_words, or quality:too_few_words)")
    insp.add_argument("--lang", help="only documents of this language")
    insp.add_argument("--corpus", help="mix/ and tokenized/: only this mix source")
    insp.add_argument("--chars", type=_positive_int, default=3000, help="characters of text shown per document")

    stats = sub.add_parser("stats", help="documents, tokens, bytes and languages of an output, from its manifests")
    stats.add_argument("output", metavar="OUTPUT", help="an output root (local or s3://) or one of its stage folders")
    stats.add_argument("--json", action="store_true", help="print the manifests' totals as JSON")

    clf = sub.add_parser("classifier", help="fastText quality classifiers (for the quality_model stage)")
    clf_sub = clf.add_subparsers(dest="classifier_command", required=True, parser_class=_Parser)
    train = clf_sub.add_parser("train", help="train a fastText classifier: positive vs negative documents")
    train.add_argument("--positive", nargs="+", required=True, metavar="URI",
                       help="high-quality documents: Parquet or JSONL (a text column) or .txt (one a line), local or s3://")
    train.add_argument("--negative", nargs="+", required=True, metavar="URI", help="the documents to tell them from")
    train.add_argument("--output", required=True, metavar="MODEL.bin",
                       help="the model file (local or s3://); its card goes beside it as MODEL.json")
    train.add_argument("--config", help="YAML config (for classifier.*, inputs.text_field, fetch.*, s3.*)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="e.g. --set classifier.max_documents_per_class=100000")

    blocklist = sub.add_parser("blocklist", help="manage the URL blocklist")
    bl_sub = blocklist.add_subparsers(dest="blocklist_command", required=True, parser_class=_Parser)
    fetch = bl_sub.add_parser("fetch", help="download the UT1 blacklists into the cache (needs internet)")
    fetch.add_argument("--dest", default="~/.cache/refinedweb/blocklists/ut1")
    fetch.add_argument("--url", default=None, help="override the download URL")
    return parser


def _cmd_run(args) -> int:
    from .config import load_config

    overrides = list(args.overrides)
    if args.stage not in ("filter", "dedup", "all"):       # document stages: their sections are valid config
        entries = [e.strip() for e in args.stage.split(",") if e.strip()]
        overrides.append(f"filter.stages=[{', '.join(entries)}]")
    cfg = load_config(args.config, overrides)
    workers = args.workers or cfg["run"]["workers"]
    code = EXIT_OK
    dedup_inputs = args.input
    from .runtime.progress import Reporter
    from .runtime.ray_runner import RayRuntime

    runtime = RayRuntime.for_config(cfg, workers, args.ray_address)   # started by the first stage, shared by both of `all`
    reporter = Reporter(args.progress)
    log = reporter.log
    try:
        if args.stage not in ("filter", "dedup", "all"):
            return _run_document_stages(args, cfg, workers, runtime, reporter)
        if args.stage in ("filter", "all"):
            from .runtime.filter_job import run_filter_stage
            from .stats import format_funnel

            summary = run_filter_stage(args.input, args.output, cfg, workers=workers, ray_address=args.ray_address,
                                       limit=args.limit, log=log, runtime=runtime,
                                       overwrite=args.overwrite, progress=reporter.progress)
            print(format_funnel(summary))
            print(f"Parquet: {summary['output']}/  (stats: {summary['output']}/.refinedweb/stats.json)")
            failed = [f for f in summary["files"] if f["status"] != "ok"]
            if failed:
                log(f"refinedweb: {len(failed)} of {len(summary['files'])} input file(s) failed:")
                for f in failed:
                    log(f"  {f['uri']}: {f['error']}")
                log("refinedweb: run the same command again to retry them (finished files are skipped)")
                code = EXIT_FAILED
            dedup_inputs = [_filtered_inputs(summary["output"])]
            if failed and args.stage == "all":
                # dedup is corpus-level: over an incomplete corpus it would have to be redone anyway
                log("refinedweb: dedup skipped until every input file is filtered: re-run the same command")
                return code
        if args.stage in ("dedup", "all"):
            from .runtime.dedup_job import run_dedup_stage

            summary = run_dedup_stage(dedup_inputs, args.output, cfg, workers=workers, ray_address=args.ray_address,
                                      limit=args.limit if args.stage == "dedup" else None, log=log,
                                      runtime=runtime, overwrite=args.overwrite)
            print(format_dedup(summary))
            print(f"Parquet: {summary['output']}/  (stats: {summary['output']}/.refinedweb/stats.json)")
    finally:
        reporter.close()
        runtime.close()
    return code


def _run_document_stages(args, cfg, workers, runtime, reporter) -> int:
    """`--stage a,b`: document stages over existing Parquet (`run_document_stages`)."""
    from .runtime.filter_job import run_document_stages
    from .stats import format_funnel

    entries = [e.strip() for e in args.stage.split(",") if e.strip()]
    if not entries:
        raise UserError("--stage takes filter, dedup, all, or document stage names separated by commas")
    summary = run_document_stages(entries, args.input, args.output, cfg, workers=workers, ray_address=args.ray_address,
                                  limit=args.limit, log=reporter.log, runtime=runtime, overwrite=args.overwrite,
                                  progress=reporter.progress)
    print(format_funnel(summary))
    print(f"Parquet: {summary['output']}/  (stats: {summary['output']}/.refinedweb/stats.json)")
    failed = [f for f in summary["files"] if f["status"] != "ok"]
    if failed:
        reporter.log(f"refinedweb: {len(failed)} of {len(summary['files'])} input file(s) failed:")
        for f in failed:
            reporter.log(f"  {f['uri']}: {f['error']}")
        reporter.log("refinedweb: run the same command again to retry them (finished files are skipped)")
        return EXIT_FAILED
    return EXIT_OK


def _filtered_inputs(folder: str) -> str:
    """The filter stage's output as dedup input (S3 prefixes as a glob)."""
    return f"{folder}/**.parquet" if folder.startswith("s3://") else folder


def format_dedup(summary) -> str:
    t = summary["totals"]
    lines = [f"{'dedup method':<16} {'docs in':>9} {'docs out':>9} {'removed':>9} {'chars removed':>14}  notes"]
    for name, st in summary["methods"].items():
        notes = ", ".join(f"{k} {v}" for k, v in st.items()
                          if k not in ("docs_in", "docs_out", "docs_removed", "chars_removed"))
        lines.append(f"{name:<16} {st.get('docs_in', 0):>9} {st.get('docs_out', 0):>9} {st.get('docs_removed', 0):>9}"
                     f" {st.get('chars_removed', 0):>14}  {notes}")
    lines.append(f"documents {t['docs_in']} -> {t['docs_out']} ({t['docs_removed']} removed); {t['wall_seconds']:.1f}s")
    return "\n".join(lines)


def _cmd_mix(args) -> int:
    from .config import load_config
    from .runtime.mix_job import REPORT, run_mix
    from .runtime.progress import Reporter

    log = Reporter("json" if args.progress == "json" else "plain").log
    report = run_mix(args.config, args.output, load_config(), workers=args.workers, ray_address=args.ray_address,
                     overwrite=args.overwrite, log=log)
    print(f"{'corpus':<24} {'weight':>7} {'share':>7} {'tokens':>16} {'documents':>12} {'epochs':>7}")
    for s in report["sources"]:
        print(f"{s['name']:<24} {100 * s['weight']:>6.2f}% {100 * s['share']:>6.2f}% {s['tokens']:>16,} "
              f"{s['documents']:>12,} {s['epochs']:>7.3f}")
    print(f"total {report['total_tokens']:,} tokens (target {report['total_tokens_target']:,}), "
          f"{report['documents']:,} documents in {report['shards']} shard(s)")
    print(f"Parquet: {args.output.rstrip('/')}/mix/  (report: {args.output.rstrip('/')}/{REPORT})")
    from .runtime.mix_job import load_mix_config

    data, _ = load_mix_config(args.config)
    if data.get("tokenize"):                  # text and tokens in one job: the mix's own `tokenize:` section
        from .runtime.tokenize_job import run_tokenize

        if not isinstance(data["tokenize"], dict):
            raise UserError(f"{args.config}: 'tokenize:' must be a mapping of tokenize.* settings")
        cfg = load_config(overrides=[f"tokenize.{k}={json.dumps(v)}" for k, v in data["tokenize"].items()])
        summary = run_tokenize([f"{args.output.rstrip('/')}/mix"], args.output, cfg, workers=args.workers,
                               ray_address=args.ray_address, overwrite=args.overwrite, log=log)
        t = summary["totals"]
        print(f"tokenized: {t['documents']:,} documents, {t['tokens']:,} tokens ({summary['format']}) in "
              f"{t['shards']} shard(s): {summary['output']}/")
    return EXIT_OK


def _cmd_tokenize(args) -> int:
    from .config import load_config
    from .runtime.progress import Reporter
    from .runtime.tokenize_job import run_tokenize

    overrides = list(args.overrides)
    for key, value in (("tokenizer", args.tokenizer), ("format", args.format), ("seed", args.seed)):
        if value is not None:
            overrides.append(f"tokenize.{key}={value}")
    if args.no_shuffle:
        overrides.append("tokenize.shuffle=false")
    cfg = load_config(args.config, overrides)
    reporter = Reporter("json" if args.progress == "json" else "plain")
    try:
        summary = run_tokenize(args.input, args.output, cfg, workers=args.workers or cfg["run"]["workers"],
                               ray_address=args.ray_address, limit=args.limit, log=reporter.log,
                               overwrite=args.overwrite)
    finally:
        reporter.close()
    t = summary["totals"]
    print(f"{t['documents']:,} documents, {t['tokens']:,} tokens ({summary['format']}, {summary['token_dtype']}, "
          f"{summary['tokenizer']}) in {t['shards']} shard(s); skipped: {t['no_text']:,} without text, "
          f"{t['bad_lines']:,} bad line(s)")
    print(f"Tokens: {summary['output']}/  (manifest: {summary['output']}/.refinedweb/manifest.json)")
    if summary.get("megatron_data_path"):
        print(f"Megatron --data-path: $(cat {summary['megatron_data_path']})")
    return EXIT_OK


def _cmd_crawls(args) -> int:
    from .config import load_config
    from .crawls import list_crawls, pending
    from .io.remote import FetchConfig
    from .io.storage import open_storage

    fetch = FetchConfig.from_config(load_config(args.config, args.overrides))
    found = list_crawls(fetch, args.collinfo)
    if args.pending:
        if not args.output:
            raise UserError("--pending needs --output ROOT")
        found = pending(found, open_storage(args.output, fetch))
    print("\n".join(found))
    return EXIT_OK


def _cmd_jobs(args) -> int:
    from .runtime import jobs

    if args.command == "submit":
        command = args.job_command[1:] if args.job_command[:1] == ["--"] else args.job_command
        job_id, status = jobs.submit(args.address, command, install=not args.no_install, wait=args.wait,
                                     log=lambda m: print(m, file=sys.stderr))
        print(job_id)
        if status is not None:
            print(f"{job_id}: {status}", file=sys.stderr)
            return EXIT_OK if status == "SUCCEEDED" else EXIT_FAILED
        return EXIT_OK
    if args.command == "status":
        info = jobs.status(args.address, args.job_id)
        print(f"{info['job_id']}: {info['status']}" + (f" ({info['message']})" if info["message"] else ""))
        return EXIT_OK
    print(jobs.logs(args.address, args.job_id), end="")
    return EXIT_OK


def _cmd_report(args) -> int:
    from .io.remote import FetchConfig
    from .report import render

    written = render(args.output, FetchConfig())
    print(f"report: {written['html']}\nfunnel: {written['funnel']}")
    return EXIT_OK


def _cmd_inspect(args) -> int:
    from .inspect import inspect
    from .io.remote import FetchConfig
    from .io.storage import open_existing

    text = inspect(open_existing(args.path, FetchConfig()), "", args.n, args.seed, args.reason, args.lang,
                   args.corpus, args.chars)
    if sys.stdout.isatty():
        import pydoc

        pydoc.pager(text)
    else:
        print(text)
    return EXIT_OK


def _cmd_stats(args) -> int:
    import json

    from .io.manifest import find_manifests, format_totals
    from .io.remote import FetchConfig
    from .io.storage import open_existing

    found = find_manifests(open_existing(args.output, FetchConfig()))
    if not found:
        raise UserError(f"no .refinedweb/manifest.json in {args.output} or the folders directly under it "
                        "(a stage writes it when it completes)")
    if args.json:
        print(json.dumps({folder or ".": {"stage": m.get("stage"), **m["totals"], **({"corpora": m["corpora"]} if m.get("corpora") else {})}
                          for folder, m in found}, indent=2))
    else:
        print("\n".join(format_totals(folder, m) for folder, m in found))
    return EXIT_OK


def _cmd_classifier(args) -> int:
    from .classifier.train import format_card, train_classifier
    from .config import load_config

    cfg = load_config(args.config, args.overrides)
    card = train_classifier(args.positive, args.negative, args.output, cfg,
                            log=lambda line: print(line, file=sys.stderr))
    print(format_card(card))
    print(f"model: {args.output}  (card: {args.output.removesuffix('.bin')}.json)")
    return EXIT_OK


def _cmd_blocklist(args) -> int:
    from .stages.blocklist_fetch import fetch_ut1

    kwargs = {"url": args.url} if args.url else {}
    path = fetch_ut1(os.path.expanduser(args.dest), **kwargs)
    print(f"UT1 blocklist saved to {path}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    try:
        if args.command in ("run", "tokenize"):
            from .io.scratch import sweep_once

            sweep_once()    # what a killed run's tasks left in this host's temp folder (its workers sweep too)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "blocklist":
            return _cmd_blocklist(args)
        if args.command == "classifier":
            return _cmd_classifier(args)
        if args.command == "inspect":
            return _cmd_inspect(args)
        if args.command == "stats":
            return _cmd_stats(args)
        if args.command == "tokenize":
            return _cmd_tokenize(args)
        if args.command == "mix":
            return _cmd_mix(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "crawls":
            return _cmd_crawls(args)
        if args.command in ("submit", "status", "logs"):
            return _cmd_jobs(args)
    except UserError as exc:
        from .io.remote import scrub

        print(f"refinedweb: error: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except RerunNeeded as exc:
        from .io.remote import scrub

        print(f"refinedweb: stopped: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("refinedweb: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
