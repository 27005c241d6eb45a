"""The metric series the code exports, read from the exporter modules' source with `ast`, and
the metric names a PromQL expression reads.

The dashboard and the alert rules may only name series that exist; reading the exporters'
source (not a hand-kept list) makes a renamed metric fail the tests. Understood: the
`prometheus_client` metric classes (name as the first argument or `name=`, with `namespace`,
`subsystem` and `unit`) and the `*MetricFamily` classes of custom collectors. Names may be
string literals, module-level string constants, f-strings of those, or `+` of those.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.deploy.checkers import ROOT

EXPORTERS = (ROOT / "service" / "gateway" / "metrics.py", ROOT / "worker" / "metrics.py")

# class name -> suffixes of the series it exposes ("" is the bare name)
_SERIES_SUFFIXES: dict[str, tuple[str, ...]] = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum", "_created"),
    "Summary": ("_count", "_sum", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
    "CounterMetricFamily": ("_total",),
    "GaugeMetricFamily": ("",),
    "HistogramMetricFamily": ("_bucket", "_count", "_sum"),
    "SummaryMetricFamily": ("_count", "_sum"),
    "InfoMetricFamily": ("_info",),
    "StateSetMetricFamily": ("",),
}
_COUNTERS = {"Counter", "CounterMetricFamily"}
# series every Prometheus has without any exporter of ours
BUILTIN_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})


class UnresolvedMetricNameError(ValueError):
    """A metric's name is built in a way this reader cannot follow."""


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "..."` assignments (in order, each may use the previous ones)."""
    constants: dict[str, str] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    constants[target.id] = _resolve(value, constants)
                except UnresolvedMetricNameError:
                    continue
    return constants


def _resolve(node: ast.expr, constants: dict[str, str]) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _resolve(node.left, constants) + _resolve(node.right, constants)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                if value.format_spec is not None or value.conversion != -1:
                    raise UnresolvedMetricNameError(ast.unparse(node))
                parts.append(_resolve(value.value, constants))
            else:
                parts.append(_resolve(value, constants))
        return "".join(parts)
    raise UnresolvedMetricNameError(ast.unparse(node))


def _class_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _argument(call: ast.Call, keyword: str, position: int | None) -> ast.expr | None:
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def exported_series(source: str, filename: str = "<source>") -> set[str]:
    """Every series name the metric objects created in `source` expose.

    Raises:
        UnresolvedMetricNameError: a metric's name (or namespace, subsystem, unit) is not a string
            this reader can evaluate statically.
    """
    tree = ast.parse(source, filename=filename)
    constants = _string_constants(tree)
    series: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        kind = _class_name(node)
        if kind not in _SERIES_SUFFIXES:
            continue
        parts = []
        try:
            for keyword, position in (("namespace", None), ("subsystem", None), ("name", 0)):
                value = _argument(node, keyword, position)
                if value is not None:
                    parts.append(_resolve(value, constants))
            unit_node = _argument(node, "unit", None)
            unit = _resolve(unit_node, constants) if unit_node is not None else ""
        except UnresolvedMetricNameError as error:
            raise UnresolvedMetricNameError(f"{filename}:{node.lineno}: {error}") from None
        name = "_".join(part for part in parts if part)
        if unit and not name.endswith("_" + unit):
            name += "_" + unit
        if kind in _COUNTERS:
            name = name.removesuffix("_total")
        series |= {name + suffix for suffix in _SERIES_SUFFIXES[kind]}
    return series


def series_of_exporters(paths: tuple[Path, ...] = EXPORTERS) -> set[str]:
    """The series of every exporter module (each must exist)."""
    series: set[str] = set()
    for path in paths:
        series |= exported_series(path.read_text(), filename=str(path.relative_to(ROOT)))
    return series


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "bool", "inf", "nan", "atan2", "le"}
)


def metrics_in_promql(expression: str) -> set[str]:
    """The metric names an expression reads (functions, labels, keywords and ranges dropped).

    Grafana's `$variables` count as nothing. Regular-expression matchers on `__name__` are not
    understood (the expression should name its metrics).
    """
    text = _STRING.sub('""', expression)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = _GROUPING.sub("", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}
