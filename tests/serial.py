"""A runtime that runs a stage's units one after another in this process: the phases without Ray, for
tests that compare many settings quickly (the same driver code; Ray's own scheduling is tested elsewhere)."""

from __future__ import annotations

from contextlib import contextmanager


class SerialRuntime:
    slots = 1
    address = None

    def map(self, fn, arg_list, max_retries=0, on_result=None):
        results = []
        for i, args in enumerate(arg_list):
            results.append(fn(*args))
            if on_result is not None:
                on_result(i, results[-1])
        return results

    def map_files(self, uris, cfg, output, blocklist, on_result, per_host=None, kind="filter", folder=None):
        """The filter pass (or document stages) over each file, as a Ray task runs it (without the task's
        runtime context, which would start Ray)."""
        from refinedweb.runtime.documents_pass import documents_file
        from refinedweb.runtime.filter_pass import Pipeline, filter_file

        stages = Pipeline.build(cfg, blocklist)
        for uri in uris:
            on_result(documents_file(uri, cfg, output, stages, folder) if kind == "documents"
                      else filter_file(uri, cfg, output, stages), uri)

    def start(self):
        return self

    def describe(self):
        return "(serial, in this process)"

    @contextmanager
    def session(self, owned):
        yield self


def dedup_in_process(inputs, output, *overrides, log=lambda line: None):
    """Run the dedup stage over `inputs` into `output` in this process; returns (rows by id, stats)."""
    import pyarrow.dataset as ds

    from refinedweb.config import load_config
    from refinedweb.runtime.dedup_job import run_dedup_stage

    cfg = load_config(overrides=list(overrides))
    stats = run_dedup_stage([str(i) for i in inputs], str(output), cfg, runtime=SerialRuntime(), log=log)
    table = ds.dataset(f"{output}/dedup", format="parquet", exclude_invalid_files=True).to_table()
    return {r["id"]: r for r in table.to_pylist()}, stats


def mix_in_process(config, output, log=lambda line: None) -> dict:
    """Run `refinedweb mix` with the config file `config` into `output` in this process; returns its report."""
    from refinedweb.config import load_config
    from refinedweb.runtime.mix_job import run_mix

    return run_mix(str(config), str(output), load_config(), runtime=SerialRuntime(), log=log)
