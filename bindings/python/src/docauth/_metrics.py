"""Metrics of a runtime (its sessions), a policy engine (its decisions) and a credentials
provider (its STS calls), from `docauth_metrics_render`.

    text = docauth.metrics_text(runtime, engine, provider)    # Prometheus text 0.0.4
    body = docauth.metrics_text(runtime, openmetrics=True)    # OpenMetrics 1.0
    families = docauth.metrics(runtime, engine)               # the values, typed
    families["docauth_sessions_started"].value()              # one sample, no labels
    families["docauth_messages_judged"].value(verdict="denied", class_="this_db")

Serve `metrics_text(...)` at `/metrics` with `metrics_content_type(...)`. Every name starts with
`docauth_`; labels only take fixed values. docs/metrics.md lists every metric.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass, field
from typing import Optional

from . import _ffi
from .policy import PolicyEngine
from .provider import CredentialsProvider
from .session import Runtime

#: `docauth_metrics_format` values (include/docauth.h).
FORMAT_PROMETHEUS = 0
FORMAT_OPENMETRICS = 1


def metrics_content_type(openmetrics: bool = False) -> str:
    """The HTTP Content-Type of the text `metrics_text` returns with the same `openmetrics`."""
    fmt = FORMAT_OPENMETRICS if openmetrics else FORMAT_PROMETHEUS
    raw = _ffi.lib().docauth_metrics_content_type(ctypes.c_uint32(fmt))
    return raw.decode("ascii") if raw else ""


def metrics_text(
    runtime: Optional[Runtime] = None,
    engine: Optional[PolicyEngine] = None,
    provider: Optional[CredentialsProvider] = None,
    *,
    openmetrics: bool = False,
) -> str:
    """The current metrics of the given objects (any of them may be None) as Prometheus
    text 0.0.4, or OpenMetrics 1.0 text when `openmetrics` is true."""
    # Each object's lock is held during the call, so none is closed while the library reads it.
    held = [o for o in (runtime, engine, provider) if o is not None]
    for o in held:
        o._lock.acquire()
    try:
        handles = [o._use() if o is not None else None for o in (runtime, engine, provider)]
        out = ctypes.POINTER(_ffi.docauth_bytes)()
        err = _ffi.new_error_out()
        result = _ffi.lib().docauth_metrics_render(
            handles[0],
            handles[1],
            handles[2],
            ctypes.c_uint32(FORMAT_OPENMETRICS if openmetrics else FORMAT_PROMETHEUS),
            ctypes.byref(out),
            ctypes.byref(err),
        )
        _ffi.check(result, err)
        return _ffi.take_bytes(out).decode("utf-8")
    finally:
        for o in reversed(held):
            o._lock.release()


@dataclass(frozen=True)
class MetricSample:
    """One line of the exposition: `name{labels} value` (a histogram has `_bucket`, `_sum`
    and `_count` samples)."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass
class MetricFamily:
    """A metric with its type (`counter`, `gauge`, `histogram`), help text and samples.
    `name` is the family's name as the `# TYPE` line gives it."""

    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[MetricSample] = field(default_factory=list)

    def value(self, sample: str = "", **labels: str) -> float:
        """The value of the sample whose labels are exactly `labels` (a trailing underscore is
        dropped from a key, for `class_`). `sample` picks a histogram's `_count`, `_sum` or
        `_bucket` (with `le=`); a counter's `_total` is found without it. KeyError if absent."""
        want = {k.rstrip("_"): v for k, v in labels.items()}
        names = {self.name + sample} if sample else {self.name, self.name + "_total"}
        for s in self.samples:
            if s.name in names and s.labels == want:
                return s.value
        raise KeyError(f"{self.name}{sample} has no sample with labels {want}")


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _family_of(sample: str, families: dict[str, MetricFamily]) -> Optional[MetricFamily]:
    if sample in families:
        return families[sample]
    for suffix in ("_total", "_bucket", "_sum", "_count", "_created"):
        if sample.endswith(suffix) and sample[: -len(suffix)] in families:
            return families[sample[: -len(suffix)]]
    return None


def parse_metrics(text: str) -> dict[str, MetricFamily]:
    """Parse the Prometheus text (or OpenMetrics text) this library renders into families by
    name. In Prometheus text a counter's family is named with `_total`; it is filed under the
    name without it, as in OpenMetrics, so both formats give the same keys. Meant for this
    library's own output, not for any exposition."""
    families: dict[str, MetricFamily] = {}
    for line in text.splitlines():
        if not line or line == "# EOF":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE", "UNIT"):
                continue
            name = parts[2]
            rest = parts[3] if len(parts) > 3 else ""
            # Only counters' names end with `_total` here (no other family of this library's does).
            if name.endswith("_total"):
                name = name[: -len("_total")]
            family = families.setdefault(name, MetricFamily(name))
            if parts[1] == "TYPE":
                family.type = rest
            elif parts[1] == "HELP":
                family.help = _unescape(rest)
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"not a sample line: {line!r}")
        name, label_text, value = m.group(1), m.group(2) or "", m.group(3)
        labels = {k: _unescape(v) for k, v in _LABEL.findall(label_text)}
        owner = _family_of(name, families) or families.setdefault(name, MetricFamily(name))
        owner.samples.append(MetricSample(name, labels, float(value)))
    return families


def metrics(
    runtime: Optional[Runtime] = None,
    engine: Optional[PolicyEngine] = None,
    provider: Optional[CredentialsProvider] = None,
) -> dict[str, MetricFamily]:
    """The current metrics as typed values, by family name (`docauth_sessions_started`,
    `docauth_upstream_phase_duration_seconds`, ...), for hosts that feed their own metrics
    library."""
    return parse_metrics(metrics_text(runtime, engine, provider))


__all__ = [
    "FORMAT_OPENMETRICS",
    "FORMAT_PROMETHEUS",
    "MetricFamily",
    "MetricSample",
    "metrics",
    "metrics_content_type",
    "metrics_text",
    "parse_metrics",
]
