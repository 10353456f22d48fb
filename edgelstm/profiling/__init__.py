"""`edgelstm profile`: latency per runtime, time per operator, and the model's size and MAC count.

Every backend is measured in its own fresh process (see `child.py`): cold start is then a real
first call (imports, model load, JIT or cache load), peak memory belongs to that backend alone, and
the percentiles come from `runs` timed calls after `warmup` untimed ones. The model totals (MACs,
parameters, bytes) are counted from the graph and edgelstm's kernels, not estimated.

profiler.py holds `profile()`, stats.py the model totals and latency statistics, backends.py one
runner per runtime, child.py the measuring process, report.py the table and HTML.
"""
from .backends import BACKENDS
from .profiler import DEFAULT_BACKENDS, profile
from .stats import machine_info, model_stats, summarize

__all__ = ["profile", "model_stats", "summarize", "machine_info", "BACKENDS", "DEFAULT_BACKENDS"]
