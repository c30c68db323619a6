"""How the report writes numbers: metrics to 4 decimals, times as the paper prints them
("1h 24m 44s"), signed differences, confidence intervals, p-values, device-hours."""

from __future__ import annotations


def is_duration(metric: str) -> bool:
    """Times in seconds: train_time_s, wall_time_s, train_epoch_time_mean_s, ..."""
    return metric.endswith("_s") and "time" in metric


def format_duration(seconds: float) -> str:
    """Seconds as the paper prints times: "1h 24m 44s", "3m 07s", "6s"; negative with "-"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def value(metric: str, number: float) -> str:
    return format_duration(number) if is_duration(metric) else f"{number:.4f}"


def signed(metric: str, number: float) -> str:
    """A difference: "+0.0213", "-0.0040", "+2m 56s"."""
    if is_duration(metric):
        return ("+" if number >= 0 else "-") + format_duration(abs(number))
    return f"{number:+.4f}"


def interval(metric: str, ci: tuple[float, float] | None) -> str:
    return "—" if ci is None else f"[{signed(metric, ci[0])}, {signed(metric, ci[1])}]"


def pvalue(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def percent(fraction: float) -> str:
    return f"{100 * fraction:+.2f} %"


def hours(seconds: float) -> str:
    """Device-hours with 3 significant digits: 1.25, 0.0312, 12.5."""
    return f"{seconds / 3600:.3g}"
