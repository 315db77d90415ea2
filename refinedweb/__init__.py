"""refinedweb: the RefinedWeb (Penedo et al. 2023) pipeline — CommonCrawl WARC to filtered,
deduplicated Parquet, stage by stage, on Ray."""

__version__ = "0.1.0"
