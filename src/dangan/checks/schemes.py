"""Preset check schemes, one per stage: every item enabled; the items whose failure must stop the record or the
package are veto items (一票否决). An archive adjusts them on the 检测方案 page; the presets only start it right."""

from __future__ import annotations

from typing import Any

from dangan.checks.model import Stage

_VETO_ALWAYS = ("fixity_info", "content_digest", "content_complete", "virus_scan")

PRESETS: dict[Stage, dict[str, Any]] = {
    Stage.FILING: {"name": "归档环节四性检测（预置）",
                   "veto": (*_VETO_ALWAYS, "content_linkage", "mandatory_metadata"),
                   "advisory": ("filing_scope",)},
    Stage.TRANSFER: {"name": "移交与接收环节四性检测（预置）",
                     "veto": (*_VETO_ALWAYS, "package_consistency", "package_structure", "extra_files", "data_totals"),
                     "advisory": ()},
    Stage.PRESERVATION: {"name": "长期保存环节四性检测（预置）",
                         "veto": (*_VETO_ALWAYS, "content_linkage", "process_security"),
                         "advisory": ("filing_scope", "duplicates")},
}


def preset_items(stage: Stage) -> dict[str, Any]:
    from dangan.checks.engine import items_for

    p = PRESETS[stage]
    return {i.key: {"enabled": True, "veto": i.key in p["veto"], "advisory": i.key in p["advisory"]}
            for i in items_for(stage)}
