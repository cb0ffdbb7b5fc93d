"""Row names that say what ran: a method run with a setting that makes it another method than the paper's is shown
under a name that says so, in every table and line of the report.

RLP-SPG at confidence threshold 0 accepts every instruction: the paper's select-all ablation, not RLP-SPG. A row
called ``rlp_spg`` would let a reader take the ablation's number for the method's. The run records such names
(``results["labels"]``, from each method's options: :func:`harness.registry.row_labels`); results.json and the
leaderboards keep the registry's names, which commands and checks use.
"""

from __future__ import annotations


def relabelled(results: dict) -> dict:
    """``results`` with every method named by its label: the methods, the comparisons and the diagnostics. Each
    relabelled method keeps its registry name under ``"method"`` (its output files are stored under it)."""
    labels = results.get("labels") or {}
    if not labels:
        return results

    def label(name: str) -> str:
        return labels.get(name, name)

    return {
        **results,
        "methods": {label(name): {**entry, "method": name} for name, entry in results["methods"].items()},
        "comparisons": [{**c, "method": label(c["method"]), "baseline": label(c["baseline"])}
                        for c in results.get("comparisons", [])],
        "diagnostics": {label(name): records for name, records in results.get("diagnostics", {}).items()},
    }


def registry_name(results: dict, name: str) -> str:
    """The registry's name of the method shown as ``name``."""
    return results["methods"].get(name, {}).get("method", name)


def shown_name(results: dict, method: str) -> str:
    """The name the method called ``method`` in the registry is shown under."""
    return (results.get("labels") or {}).get(method, method)
