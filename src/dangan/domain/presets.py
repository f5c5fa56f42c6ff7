"""Category presets a new agency gets from `dangan init`: 文书 WS, 会计 KU, 科技·基建 KJ, 照片 ZP, 音像 LX."""

from __future__ import annotations

from typing import Any

from dangan.domain.archival_code import PRESETS as CODE_PRESETS

ARRANGEMENTS: dict[str, dict[str, Any]] = {
    "item": {"label": "件", "levels": ["item"]},
    "volume": {"label": "案卷/卷内", "levels": ["volume", "item"]},
    "project": {"label": "项目/案卷/卷内", "levels": ["project", "volume", "item"]},
    "group": {"label": "组/张", "levels": ["group", "item"]},
}

LEVEL_LABELS = {"item": "件", "volume": "案卷", "project": "项目", "group": "组"}
ITEM_LABEL_IN = {"volume": "卷内文件", "project": "卷内文件", "group": "张"}

SECURITY_LEVELS = ["公开", "内部", "秘密", "机密", "绝密"]
STATE_SECRET_LEVELS = ["秘密", "机密", "绝密"]
DOC_TYPES = [
    "决议", "决定", "命令", "公报", "公告", "通告", "意见", "通知", "通报", "报告", "请示", "批复", "议案", "函", "纪要",
    "其他",
]

YEAR_DATE = {"rule": "year_matches_date", "year": "year", "date": "date"}


def f(code: str, label: str, **kw: Any) -> dict[str, Any]:
    return {"code": code, "label": label, **kw}


TITLE = f("title", "题名", obligation="required", max_length=500, dat46="M22")
YEAR = f("year", "年度", type="year", obligation="required", dat46="M11")
RETENTION = f(
    "retention_period", "保管期限", type="retention", obligation="required", dat46="M12",
    description="Y 永久，D30 定期30年，D10 定期10年",
)
SECURITY = f(
    "security_level", "密级", type="enum", obligation="required", domain=SECURITY_LEVELS, dat46="M38", default="公开"
)
SECRECY = f(
    "secrecy_period", "保密期限", obligation="conditional", max_length=20, dat46="M39",
    condition={"field": "security_level", "in": STATE_SECRET_LEVELS},
    pattern=r"\d{1,2}年|\d{1,2}个月|长期|解密条件：.+", description="如 10年、6个月、长期",
)
RESPONSIBLE = f("responsible", "责任者", obligation="required", max_length=200, dat46="M32")
DATE = f("date", "日期", type="date", obligation="required", dat46="M33")
DOC_NO = f("doc_number", "文号", max_length=100, dat46="M31", description="如 国办发〔2024〕12号")
PAGES = f("pages", "页数", type="integer", dat46="M43")
REMARKS = f("remarks", "备注", max_length=1000, dat46="M75")
KEYWORDS = f("keywords", "主题词", max_length=50, repeatable=True, dat46="M26")


def _ws_item() -> dict[str, Any]:
    return {
        "fields": [
            TITLE, YEAR, RETENTION, RESPONSIBLE, DATE, DOC_NO, SECURITY, SECRECY,
            f("doc_type", "文种", type="enum", domain=DOC_TYPES, dat46="M34"),
            f("urgency", "紧急程度", type="enum", domain=["特急", "加急", "平件"], dat46="M35"),
            f("main_recipient", "主送", max_length=500, dat46="M36"),
            f("cc", "抄送", max_length=1000, dat46="M37"),
            KEYWORDS, PAGES,
            f("draft_type", "稿本", type="enum", domain=["正本", "定稿", "草稿", "副本", "修改稿"], dat46="M45"),
            REMARKS,
        ],
        "rules": [YEAR_DATE],
    }


KU_CLASSES = {"01": "会计凭证", "02": "会计账簿", "03": "财务会计报告", "04": "其他会计资料"}

# 财政部 国家档案局令第79号《会计档案管理办法》 附表1 (enterprises and other organisations)
KU_RETENTION_TABLE = [
    {"item": "原始凭证", "class_code": "01", "retention_period": "D30"},
    {"item": "记账凭证", "class_code": "01", "retention_period": "D30"},
    {"item": "总账", "class_code": "02", "retention_period": "D30"},
    {"item": "明细账", "class_code": "02", "retention_period": "D30"},
    {"item": "日记账", "class_code": "02", "retention_period": "D30"},
    {"item": "固定资产卡片", "class_code": "02", "retention_period": "D5", "note": "固定资产报废清理后保管5年"},
    {"item": "其他辅助性账簿", "class_code": "02", "retention_period": "D30"},
    {"item": "月度、季度、半年度财务会计报告", "class_code": "03", "retention_period": "D10"},
    {"item": "年度财务会计报告", "class_code": "03", "retention_period": "Y"},
    {"item": "银行存款余额调节表", "class_code": "04", "retention_period": "D10"},
    {"item": "银行对账单", "class_code": "04", "retention_period": "D10"},
    {"item": "纳税申报表", "class_code": "04", "retention_period": "D10"},
    {"item": "会计档案移交清册", "class_code": "04", "retention_period": "D30"},
    {"item": "会计档案保管清册", "class_code": "04", "retention_period": "Y"},
    {"item": "会计档案销毁清册", "class_code": "04", "retention_period": "Y"},
    {"item": "会计档案鉴定意见书", "class_code": "04", "retention_period": "Y"},
]
_KU_KEYWORDS = {
    "原始凭证": ["原始凭证"], "记账凭证": ["记账凭证", "凭证"], "总账": ["总账"], "明细账": ["明细账"],
    "日记账": ["日记账"], "固定资产卡片": ["固定资产卡片"], "其他辅助性账簿": ["辅助账", "备查簿"],
    "月度、季度、半年度财务会计报告": ["月度", "季度", "半年度", "月报", "季报"],
    "年度财务会计报告": ["年度财务", "年度会计报告", "决算", "年报"], "银行存款余额调节表": ["余额调节表"],
    "银行对账单": ["对账单"], "纳税申报表": ["纳税申报"], "会计档案移交清册": ["移交清册"],
    "会计档案保管清册": ["保管清册"], "会计档案销毁清册": ["销毁清册"], "会计档案鉴定意见书": ["鉴定意见"],
}
for _r in KU_RETENTION_TABLE:
    _r["keywords"] = _KU_KEYWORDS[_r["item"]]
    _r["basis"] = "财政部 国家档案局令第79号 附表1"

# 国家档案局令第8号《机关文件材料归档范围和文书档案保管期限规定》(2006), 第六条 (永久) and 第七条 (定期):
# the entries as rules; the keywords are our reading of each entry and are meant to be adjusted by each agency
_L8 = "国家档案局令第8号"
WS_RETENTION_TABLE = [
    {"item": "本机关制定的法规政策性文件材料", "retention_period": "Y", "basis": f"{_L8} 第六条（一）",
     "keywords": ["条例", "规定", "办法", "细则", "规章", "制度", "规划", "章程"]},
    {"item": "本机关召开重要会议、举办重大活动等形成的主要文件材料", "retention_period": "Y",
     "basis": f"{_L8} 第六条（二）", "keywords": ["常务会议", "全体会议", "党组会议", "代表大会", "重大活动"]},
    {"item": "本机关职能活动中形成的重要业务文件材料", "retention_period": "Y", "basis": f"{_L8} 第六条（三）",
     "doc_types": ["决定", "决议", "命令", "公告"]},
    {"item": "本机关关于重要问题的请示与上级机关的批复、批示，重要的报告、总结、综合统计报表等",
     "retention_period": "Y", "basis": f"{_L8} 第六条（四）",
     "keywords": ["年度工作总结", "年度报告", "工作要点", "统计年报", "综合统计"]},
    {"item": "本机关机构演变、人事任免等文件材料", "retention_period": "Y", "basis": f"{_L8} 第六条（五）",
     "keywords": ["任免", "任职", "免职", "机构设置", "编制", "更名", "成立", "撤销", "职能配置"]},
    {"item": "本机关房屋买卖、土地征用，重要的合同协议、资产登记等凭证性文件材料", "retention_period": "Y",
     "basis": f"{_L8} 第六条（六）", "keywords": ["土地", "房屋", "产权", "征用", "合同", "协议", "资产登记"]},
    {"item": "本机关职能活动中形成的一般性业务文件材料", "retention_period": "D30", "basis": f"{_L8} 第七条（一）",
     "doc_types": ["通知", "通报", "意见", "函"]},
    {"item": "本机关关于一般性问题的请示与上级机关的批复，一般性工作报告、总结、统计报表等",
     "retention_period": "D30", "basis": f"{_L8} 第七条（一）",
     "keywords": ["请示", "批复", "报告", "总结", "统计报表", "季度"]},
    {"item": "本机关人事管理工作形成的一般性文件材料", "retention_period": "D30", "basis": f"{_L8} 第七条（一）",
     "keywords": ["考核", "培训", "招聘", "工资", "考勤", "干部"]},
    {"item": "本机关召开会议、举办活动等形成的一般性文件材料", "retention_period": "D30",
     "basis": f"{_L8} 第七条（一）", "keywords": ["会议纪要", "座谈会", "专题会议", "活动方案"]},
    {"item": "本机关职能活动中形成的临时性、事务性文件材料", "retention_period": "D10", "basis": f"{_L8} 第七条（二）",
     "keywords": ["会议通知", "值班", "放假", "接待", "简报", "信息报送", "安排", "月报"]},
    {"item": "同级机关、下级机关关于一般性事务问题的来函及本机关的复函", "retention_period": "D10",
     "basis": f"{_L8} 第七条（二）", "keywords": ["来函", "复函", "商请", "征求意见"]},
]


def _ku() -> dict[str, Any]:
    volume = {
        "fields": [
            TITLE, YEAR, RETENTION,
            f("class_code", "会计档案类别", type="enum", obligation="required", domain=list(KU_CLASSES), dat46="M14",
              description="01 会计凭证，02 会计账簿，03 财务会计报告，04 其他会计资料"),
            f("start_date", "起始日期", type="date"), f("end_date", "终止日期", type="date"),
            SECURITY, SECRECY, PAGES, REMARKS,
        ],
        "rules": [{"rule": "date_order", "start": "start_date", "end": "end_date"}],
    }
    item = {
        "fields": [
            TITLE, RESPONSIBLE, DATE, f("voucher_no", "凭证号", max_length=50),
            f("amount", "金额（元）", max_length=30, pattern=r"-?\d+(\.\d{1,2})?", description="如 1234.50"),
            SECURITY, SECRECY, PAGES, REMARKS,
        ],
        "rules": [],
    }
    return {"volume": volume, "item": item}


KJ_CLASSES = {"JJ": "基建", "KY": "科研", "SB": "设备"}


def _kj() -> dict[str, Any]:
    project = {
        "fields": [
            f("title", "项目名称", obligation="required", max_length=500, dat46="M22"),
            f("class_code", "二级类别", type="enum", obligation="required", domain=list(KJ_CLASSES),
              description="JJ 基建，KY 科研，SB 设备"),
            f("project_code", "项目代号", max_length=50),
            f("builder", "建设单位", max_length=200), f("start_date", "开工日期", type="date"),
            f("end_date", "竣工日期", type="date"), YEAR, RETENTION, SECURITY, SECRECY, REMARKS,
        ],
        "rules": [{"rule": "date_order", "start": "start_date", "end": "end_date"}],
    }
    volume = {
        "fields": [TITLE, f("compiler", "编制单位", max_length=200), YEAR, RETENTION, SECURITY, SECRECY, PAGES,
                   f("stage", "阶段", type="enum", domain=["立项", "设计", "施工", "监理", "竣工验收", "其他"]), REMARKS],
        "rules": [],
    }
    item = {
        "fields": [TITLE, RESPONSIBLE, DATE, DOC_NO, f("drawing_no", "图号", max_length=50), SECURITY, SECRECY, PAGES,
                   REMARKS],
        "rules": [],
    }
    return {"project": project, "volume": volume, "item": item}


def _zp() -> dict[str, Any]:
    group = {
        "fields": [f("title", "组题名", obligation="required", max_length=500, dat46="M22"), YEAR, RETENTION,
                   f("photographer", "摄影者", max_length=100), DATE, SECURITY, SECRECY, REMARKS],
        "rules": [YEAR_DATE],
    }
    item = {
        "fields": [f("title", "照片题名", obligation="required", max_length=500, dat46="M22"),
                   f("caption", "文字说明", max_length=2000, obligation="required"),
                   f("photographer", "摄影者", max_length=100), DATE, f("place", "地点", max_length=200),
                   f("people", "人物", max_length=500), SECURITY, SECRECY, REMARKS],
        "rules": [],
    }
    return {"group": group, "item": item}


def _lx() -> dict[str, Any]:
    return {
        "item": {
            "fields": [TITLE, YEAR, RETENTION, RESPONSIBLE, DATE, f("duration", "时长（秒）", type="integer"),
                       f("place", "地点", max_length=200), f("people", "人物", max_length=500), SECURITY, SECRECY,
                       REMARKS],
            "rules": [YEAR_DATE],
        }
    }


CATEGORY_PRESETS: dict[str, dict[str, Any]] = {
    "WS": {"name": "文书档案", "arrangement": "item", "code_preset": "DA/T 22-2015 文书", "schemas": _ws_item,
           "retention_table": WS_RETENTION_TABLE, "basis": "DA/T 22-2015《归档文件整理规则》"},
    "KU": {"name": "会计档案", "arrangement": "volume", "code_preset": "DA/T 13-2022 会计", "schemas": _ku,
           "retention_table": KU_RETENTION_TABLE, "basis": "《会计档案管理办法》（财政部 国家档案局令第79号）"},
    "KJ": {"name": "科技档案（基建）", "arrangement": "project", "code_preset": "DA/T 13-2022 科技·基建",
           "schemas": _kj, "retention_table": [], "basis": "DA/T 28-2018《建设项目档案管理规范》"},
    "ZP": {"name": "照片档案", "arrangement": "group", "code_preset": "DA/T 13-2022 照片", "schemas": _zp,
           "retention_table": [], "basis": "DA/T 50-2014《数码照片归档与管理规范》"},
    "LX": {"name": "录像档案", "arrangement": "item", "code_preset": "DA/T 13-2022 音像", "schemas": _lx,
           "retention_table": [], "basis": "DA/T 13-2022《档号编制规则》"},
}


def category_preset(code: str) -> dict[str, Any]:
    """A fresh copy of a preset: name, arrangement, code templates per level and schemas per level."""
    p = CATEGORY_PRESETS[code]
    schemas = {"item": p["schemas"]()} if code == "WS" else p["schemas"]()
    levels = ARRANGEMENTS[p["arrangement"]]["levels"]
    templates = CODE_PRESETS[p["code_preset"]]
    return {
        "code": code,
        "name": p["name"],
        "arrangement": p["arrangement"],
        "schemas": {lvl: schemas[lvl] for lvl in levels},
        "code_templates": {lvl: templates[lvl].as_list() for lvl in levels},
        "code_preset": p["code_preset"],
        "retention_table": [dict(r) for r in p["retention_table"]],
        "basis": p["basis"],
    }
