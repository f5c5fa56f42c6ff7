"""Search benchmark (检索): index build and query latency, beside a LIKE scan and FTS5 in the same run.

    .venv/bin/python bench/search.py                                   # 1,000,000 records, 100,000 with ~3 KB text, SQLite
    .venv/bin/python bench/search.py --records 300000 --with-text 30000
    .venv/bin/python bench/search.py --engine postgresql --records 200000 --with-text 20000
    .venv/bin/python bench/search.py --tiny                            # 2,000 records: the smoke test runs this

What it does:

- generates records (Chinese titles from ~60 topics with a Zipf spread, 文号 of 16 issuing bodies, 责任者, dates
  2001-2024, 档号, 密级 70 % 公开 / 20 % 内部 / 8 % 秘密 / 2 % 机密) and, for --with-text of them, ~3 KB (≈ 1,000
  characters) of 公文-style full text split into pages; a few rare words are planted (量子通信 in titles, 石墨烯 in
  text). They go straight into a real dangan data folder (`services.setup.init`, the real schema) with
  executemany; the text goes into file_texts / file_text_pages as `reindex` would leave it. Not timed as dangan.
- **index build**: what `dangan reindex` runs over every record — `services.search.index_records_parallel`
  (rjieba segmentation in worker processes; search_docs rows, FTS5 triggers / generated tsvector, in batches of
  500) and then, on SQLite, the embedded tantivy index (`search.tv`) built from search_docs. Target >= 5,000
  records/s.
- **queries**: a fixed set of >= 20 (frequent and rare words, phrases, field prefixes, 文号 and 档号, OR/NOT, filters,
  date sort), each answered by `services.search.search(audit=False)` --repeat times with facets on and off, as an
  archivist (clearance 秘密) and as a reader with clearance 公开 (trims 30 % of the records). On SQLite dangan
  answers from its tantivy index; target p95 <= 50 ms. Beside them, in the same run: the same search answered by
  the SQL engine (FTS5, facets on; its totals must equal tantivy's) and a LIKE scan with the same filters and
  trimming (`title/doc_number/responsible LIKE '%w%' OR id IN (pages whose text LIKE '%w%')`, total + 20 newest).
- prints where the time of the slowest query goes, statement by statement.

Exit status 0 when the run completed and the checks passed (every query ran; tantivy's and FTS5's totals agree); with --check-targets, 3 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, or_, select, text

from dangan.config import load_settings
from dangan.db.models import (
    Category,
    Department,
    File,
    FileText,
    FileTextPage,
    Fonds,
    Record,
    utcnow,
)
from dangan.domain.access import DEFAULT_MATRIX
from dangan.services import search as svc
from dangan.services.access import visible
from dangan.services.context import Actor, Dangan
from dangan.services.fonds import create_department
from dangan.services.setup import init

PG_ADMIN = os.environ.get("DANGAN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARGET_INDEX_PER_S = 5000
TARGET_P95_MS = 50.0
INSERT_CHUNK = 5000

# ---------------------------------------------------------------- the generated archive

DEPARTMENTS = [("BGS", "办公室"), ("CWK", "财务科"), ("JJK", "基建科"), ("RSK", "人事科"), ("DAS", "档案室"),
               ("ZCK", "政策法规科")]
CATEGORIES = [("WS", 80), ("KU", 8), ("KJ", 8), ("ZP", 2), ("LX", 2)]
RETENTION = [("Y", 30), ("D30", 40), ("D10", 30)]
LEVELS = [("公开", 70), ("内部", 20), ("秘密", 8), ("机密", 2)]
ORGS = [("示范市人民政府办公室", "示政办"), ("示范市人民政府", "示政"), ("示范市财政局", "示财"), ("示范市教育局", "示教"),
        ("示范市卫生健康委员会", "示卫健"), ("示范市自然资源和规划局", "示自然资"), ("示范市档案局", "示档"),
        ("示范市应急管理局", "示应急"), ("示范市住房和城乡建设局", "示建"), ("示范市人力资源和社会保障局", "示人社"),
        ("示范市公安局", "示公"), ("示范市生态环境局", "示环"), ("示范市交通运输局", "示交"), ("示范市农业农村局", "示农"),
        ("示范市市场监督管理局", "示市监"), ("示范市审计局", "示审")]
TOPICS = ["档案归档", "安全生产", "政务公开", "财政预算", "防汛抗旱", "营商环境", "机关党建", "乡村振兴", "数字政府",
          "电子档案管理", "疫情防控", "生态环境保护", "垃圾分类", "河长制", "森林防火", "信访维稳", "招商引资", "人才引进",
          "教育督导", "医疗保障", "住房保障", "城市更新", "老旧小区改造", "交通安全", "食品安全", "药品监管", "消防安全",
          "节能减排", "统计调查", "人口普查", "档案数字化", "保密管理", "网络安全", "国有资产管理", "政府采购", "审计整改",
          "公务接待", "干部培训", "志愿服务", "文明城市创建", "非物质文化遗产保护", "古籍修复", "地名普查",
          "农村人居环境整治", "高标准农田建设", "耕地保护", "水土保持", "地质灾害防治", "安置补偿", "慈善捐赠",
          "退役军人服务", "残疾人就业", "养老服务", "托育服务", "学前教育", "职业教育", "科技创新", "知识产权", "质量强市",
          "档案安全检查"]
TOPIC_WEIGHTS = [1.0 / (k + 1) ** 0.9 for k in range(len(TOPICS))]
KINDS = [("通知", 40), ("通报", 8), ("报告", 12), ("请示", 10), ("批复", 10), ("函", 8), ("意见", 6), ("纪要", 6)]
ACTIONS = ["做好", "加强", "开展", "进一步做好", "推进", "落实", "规范", "深化"]
RARE_TITLE = "量子通信"  # planted in the titles of about one record in 25,000
RARE_TEXT = "石墨烯"  # planted in the text of about one text record in 4,000
UNITS = ["各区人民政府", "市政府各部门", "各直属机构", "各有关单位", "各街道办事处", "各乡镇人民政府"]
POLICIES = ["《中华人民共和国档案法》", "《机关档案管理规定》", "《电子文件归档与电子档案管理规范》", "上级有关文件要求",
            "市委市政府决策部署", "《党政机关公文处理工作条例》"]
SENTENCES = [
    "各单位要高度重视{t}工作，切实加强组织领导，明确分管领导和具体责任人，确保各项任务落到实处。",
    "要坚持问题导向，对照{t}工作要求逐项开展自查，发现问题及时整改，整改情况于{m}月{d}日前报送{dept}。",
    "{t}工作涉及面广、政策性强，各部门要加强沟通协调，形成工作合力，防止推诿扯皮。",
    "电子文件应当与纸质文件同步归档，归档时应当同时归档其元数据，保证电子档案的真实性、完整性、可用性和安全性。",
    "档案部门要加强对{t}相关文件材料收集、整理、归档工作的监督和指导，按照保管期限表划定保管期限。",
    "根据{ref}文件精神，结合我市实际，现就{t}有关事项通知如下。",
    "{year}年全市共完成{t}项目{n}个，投入资金{money}万元，同比增长{pct}%，群众满意度明显提升。",
    "对工作不力、造成严重后果的，依照有关规定追究相关人员责任。",
    "请各单位于{year}年{m}月{d}日前将{t}工作总结报送市政府办公室，联系人：{name}，电话：{phone}。",
    "会议听取了{dept}关于{t}工作情况的汇报，研究部署了下一阶段重点任务。",
    "会议强调，要把{t}作为当前的一项重要政治任务，压实属地责任、部门监管责任和单位主体责任。",
    "各地要建立健全{t}长效机制，完善制度，规范程序，强化监督检查，推动工作常态化、制度化。",
    "要充分利用信息化手段，推进{t}数据共享和业务协同，提高工作效率和服务水平。",
    "经费按照财政预算管理有关规定列支，专款专用，严禁挤占挪用，自觉接受审计监督。",
    "本通知自印发之日起施行，此前有关规定与本通知不一致的，以本通知为准。",
    "请认真组织学习，抓好贯彻落实，执行中遇到的问题请及时向{dept}反映。",
    "要加强宣传引导，通过政务网站、新媒体等渠道及时发布{t}工作信息，回应社会关切。",
    "各单位应当按照{ref}的要求，做好{t}文件材料的收集整理，确保应归尽归、应收尽收。",
    "经研究，同意你单位关于{t}的请示，所需经费{money}万元从{year}年度部门预算中统筹安排。",
    "现将{year}年度{t}工作检查情况通报如下：共检查单位{n}家，发现问题{n2}个，已整改{n3}个。",
    "档案库房要落实防火、防盗、防潮、防虫、防光、防尘等措施，定期开展档案安全检查。",
    "数字化成果应当经过质量检查，图像清晰、完整，著录项目准确，与原件一致后方可验收入库。",
]
HEADINGS = ["一、总体要求", "二、主要任务", "三、工作步骤", "四、保障措施", "五、工作要求", "六、其他事项"]
NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周涛", "吴婷"]


def weighted(pairs: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
    return [p for p, _ in pairs], [w for _, w in pairs]


@dataclass
class Generated:
    n: int = 0
    with_text: int = 0
    text_bytes: int = 0
    pages: int = 0
    samples: dict[str, Any] = field(default_factory=dict)  # values the built-in queries look up


def make_text(rnd: random.Random, topic: str, org: str, year: int, ref: str, rare: bool) -> str:
    """≈ 1,000 characters (≈ 3 KB in UTF-8) of a 公文 body."""
    def fill(s: str) -> str:
        return s.format(t=rnd.choice((topic, topic, rnd.choice(TOPICS))), m=rnd.randint(1, 12), d=rnd.randint(1, 28),
                        dept=rnd.choice(DEPARTMENTS)[1], ref=ref, year=year, n=rnd.randint(3, 300),
                        money=rnd.randint(10, 9000), pct=rnd.randint(1, 40), name=rnd.choice(NAMES),
                        phone=f"{rnd.randint(1000000, 9999999)}", n2=rnd.randint(1, 90), n3=rnd.randint(1, 80))

    parts = [rnd.choice(UNITS) + "：", f"为深入贯彻落实{rnd.choice(POLICIES)}，进一步做好{topic}工作，" + fill(SENTENCES[5])]
    size = sum(map(len, parts))
    h = 0
    while size < 980:
        if rnd.random() < 0.18 and h < len(HEADINGS):
            parts.append(HEADINGS[h])
            h += 1
        s = fill(rnd.choice(SENTENCES))
        if rare and rnd.random() < 0.2:
            s = s.replace("。", f"，探索{RARE_TEXT}材料在档案保护中的应用。", 1)
            rare = False
        parts.append(s)
        size += len(s)
    if rare:
        parts.append(f"探索{RARE_TEXT}材料在档案保护中的应用。")
    parts.append(f"{org}\n{year}年{rnd.randint(1, 12)}月{rnd.randint(1, 28)}日")
    return "\n".join(parts)


def pages_of(body: str, per_page: int = 420) -> list[str]:
    lines, pages, cur = body.split("\n"), [], ""
    for ln in lines:
        if cur and len(cur) + len(ln) > per_page:
            pages.append(cur)
            cur = ""
        cur = (cur + "\n" + ln) if cur else ln
    pages.append(cur)
    return pages


def generate(app: Dangan, n: int, with_text: int, seed: int = 20261201) -> Generated:
    """Insert n records (and the text of with_text of them) straight into the real schema."""
    rnd = random.Random(seed)
    g = Generated(n=n, with_text=with_text)
    with app.read_sessions() as s:
        fonds_id = s.scalar(select(Fonds.id).where(Fonds.code == "Z109"))
        cat_ids = dict(s.execute(select(Category.code, Category.id).where(Category.fonds_id == fonds_id)).all())
        dept_ids = dict(s.execute(select(Department.code, Department.id)).all())
        next_id = (s.scalar(select(func.max(Record.id))) or 0) + 1
        next_file = (s.scalar(select(func.max(File.id))) or 0) + 1
    cats, cat_w = weighted(CATEGORIES)
    rets, ret_w = weighted(RETENTION)
    levels, level_w = weighted(LEVELS)
    kinds, kind_w = weighted(KINDS)
    years = list(range(2001, 2025))
    year_w = [1 + (y - 2001) * 0.25 for y in years]
    org_w = [1.0 / (k + 1) ** 0.7 for k in range(len(ORGS))]
    text_every = n / with_text if with_text else 0
    seq: dict[tuple[str, str], int] = {}
    doc_seq: dict[tuple[str, int], int] = {}
    now = utcnow()
    recs: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    ftexts: list[dict[str, Any]] = []
    fpages: list[dict[str, Any]] = []
    next_text = 0.0
    n_text = 0

    def flush() -> None:
        with app.engine.begin() as c:
            if recs:
                c.execute(Record.__table__.insert(), recs)
            if files:
                c.execute(File.__table__.insert(), files)
                c.execute(FileText.__table__.insert(), ftexts)
                c.execute(FileTextPage.__table__.insert(), fpages)
        for lst in (recs, files, ftexts, fpages):
            lst.clear()

    for i in range(n):
        rid = next_id + i
        year = rnd.choices(years, year_w)[0]
        cat = rnd.choices(cats, cat_w)[0]
        ret = rnd.choices(rets, ret_w)[0]
        dept = DEPARTMENTS[rnd.randrange(len(DEPARTMENTS))][0]
        level = rnd.choices(levels, level_w)[0]
        topic = rnd.choices(TOPICS, TOPIC_WEIGHTS)[0]
        org, code = ORGS[rnd.choices(range(len(ORGS)), org_w)[0]]
        kind = rnd.choices(kinds, kind_w)[0]
        shape = rnd.random()
        if i % 25_000 == 11:
            title = f"关于开展{RARE_TITLE}试点工作的{kind}"
        elif shape < 0.45:
            title = f"关于{rnd.choice(ACTIONS)}{topic}工作的{kind}"
        elif shape < 0.60:
            title = f"关于{year}年度{topic}情况的{rnd.choice(('报告', '通报', '总结'))}"
        elif shape < 0.70:
            title = f"关于印发《示范市{topic}管理办法》的通知"
        elif shape < 0.80:
            title = f"关于申请{year}年{topic}专项资金的{rnd.choice(('请示', '批复'))}"
        elif shape < 0.88:
            title = f"{org}关于{topic}的意见"
        elif shape < 0.94:
            title = f"关于召开{topic}工作会议的通知"
        else:
            title = f"{year}年第{rnd.randint(1, 30)}次{topic}专题会议纪要"
        key = (cat, f"{year}-{ret}-{dept}")
        seq[key] = seq.get(key, 0) + 1
        number = doc_seq[(code, year)] = doc_seq.get((code, year), 0) + 1
        doc_number = f"{code}〔{year}〕{number}号"
        date = dt.date(year, rnd.randint(1, 12), rnd.randint(1, 28))
        archival_code = f"Z109-{cat}·{year}-{ret}-{dept}-{seq[key]:04d}"
        recs.append({"id": rid, "fonds_id": fonds_id, "category_id": cat_ids[cat], "level": "item",
                     "department_id": dept_ids[dept], "state": "filed", "archival_code": archival_code,
                     "class_key": key[1], "seq": seq[key], "title": title, "year": year, "date": date,
                     "retention_period": ret, "security_level": level, "doc_number": doc_number, "responsible": org,
                     "metadata": {"keywords": [topic, kind], "doc_type": kind}, "created_at": now, "created_by": "bench",
                     "updated_at": now, "filed_at": now, "filed_by": "bench", "row_version": 1})
        if i == n // 2:
            g.samples.update(doc_number=doc_number, doc_number_code=code, doc_number_year=year,
                             doc_number_n=number, archival_code=archival_code, title=title)
        if with_text and i >= next_text:
            next_text += text_every
            ref = f"{ORGS[rnd.randrange(len(ORGS))][1]}〔{max(2001, year - 1)}〕{rnd.randint(1, 200)}号"
            n_text += 1
            body = make_text(rnd, topic, org, year, ref, rare=n_text % 4000 == 7)
            pages = pages_of(body)
            fid = next_file
            next_file += 1
            raw = body.encode()
            digest = hashlib.sha256(raw).hexdigest()
            files.append({"id": fid, "record_id": rid, "role": "main", "name": f"{rid:07d}.pdf", "size": len(raw),
                          "media_type": "application/pdf", "format_name": "PDF", "sha256": digest, "sm3": digest,
                          "storage_key": f"bench/{digest}", "sequence": 1, "version": 1, "is_current": True,
                          "reason": "", "created_at": now, "created_by": "bench"})
            ftexts.append({"file_id": fid, "record_id": rid, "status": "ok", "encoding": None, "message": "",
                           "chars": len(body), "pages": len(pages), "truncated": False, "extracted_at": now})
            fpages.extend({"file_id": fid, "page": k + 1, "text": p} for k, p in enumerate(pages))
            g.text_bytes += len(raw)
            g.pages += len(pages)
        if len(recs) >= INSERT_CHUNK:
            flush()
    flush()
    g.samples["text_records"] = n_text
    return g


# ---------------------------------------------------------------- the queries

@dataclass
class Q:
    name: str
    q: str
    flt: dict[str, Any] = field(default_factory=dict)
    sort: str = "relevance"
    like: list[str] = field(default_factory=list)  # conjuncts; "a|b" is either, "-a" excludes
    like_fields: tuple[str, ...] = ("title", "doc_number", "responsible", "content")


def builtin_queries(samples: dict[str, Any]) -> list[Q]:
    dn = samples["doc_number"]
    code, year, number = samples["doc_number_code"], samples["doc_number_year"], samples["doc_number_n"]
    ac = samples["archival_code"]
    return [
        Q("frequent word", "通知", like=["通知"]),
        Q("frequent word, year 2020", "通知", {"year": 2020}, like=["通知"]),
        Q("frequent word, by date", "通知", sort="date", like=["通知"]),
        Q("frequent word in text", "工作", like=["工作"]),
        Q("two words", "档案 归档", like=["档案", "归档"]),
        Q("phrase", '"电子档案管理"', like=["电子档案管理"]),
        Q("phrase, category WS", '"安全生产"', {"category": "WS"}, like=["安全生产"]),
        Q("word, years 2018-2022", "营商环境", {"year_from": 2018, "year_to": 2022}, like=["营商环境"]),
        Q("rare word (titles)", RARE_TITLE, like=[RARE_TITLE]),
        Q("rare word (text only)", RARE_TEXT, like=[RARE_TEXT]),
        Q("field 题名", "题名:通知", like=["通知"], like_fields=("title",)),
        Q("field 责任者", "责任者:财政局", like=["财政局"], like_fields=("responsible",)),
        Q("field 文号 prefix", "文号:示财", like=["示财"], like_fields=("doc_number",)),
        Q("field 全文", "全文:归档", like=["归档"], like_fields=("content",)),
        Q("文号 as stored", dn, like=[dn]),
        Q("文号, other brackets", f"{code}[{year}]{number:03d}号", like=[dn]),
        Q("档号 exact", ac, like=[ac], like_fields=("archival_code",)),
        Q("档号 with - for ·", ac.replace("·", "-"), like=[ac], like_fields=("archival_code",)),
        Q("OR, department BGS", "通知 OR 通报", {"department": "BGS"}, like=["通知|通报"]),
        Q("NOT", "会议 -纪要", like=["会议", "-纪要"]),
        Q("word, 永久", "防汛抗旱", {"retention_period": "Y"}, like=["防汛抗旱"]),
        Q("word, 密级 内部", "乡村振兴", {"security_level": "内部"}, like=["乡村振兴"]),
        Q("medium word", "保密管理", like=["保密管理"]),
        Q("word + word", "档案数字化 质量", like=["档案数字化", "质量"]),
        Q("tail topic", "古籍修复", like=["古籍修复"]),
        Q("natural title", "关于做好档案归档工作的通知", like=["关于做好档案归档工作的通知"]),
    ]


def load_queries(path: Path) -> list[Q]:
    """JSON lines: {"name": …, "q": …, "filter": {…}, "sort": "relevance", "like": ["w", …], "like_fields": […]}"""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            d = json.loads(line)
            out.append(Q(d.get("name") or d["q"], d["q"], d.get("filter") or {}, d.get("sort", "relevance"),
                         d.get("like") or d["q"].split(), tuple(d.get("like_fields") or Q.like_fields)))
    return out


def actors() -> dict[str, Actor]:
    return {
        "archivist": Actor("bench-archivist", "专职档案员", frozenset({"archivist"}), clearance="秘密",
                           grants=tuple(sorted(DEFAULT_MATRIX["archivist"].items()))),
        "reader": Actor("bench-reader", "利用者", frozenset({"reader"}), clearance="公开",
                        grants=tuple(sorted(DEFAULT_MATRIX["reader"].items()))),
    }


# ---------------------------------------------------------------- the LIKE baseline

def like_scan(app: Dangan, actor: Actor, qq: Q) -> tuple[int, list[int]]:
    """The same filters and trimming, each word a substring of the raw fields or of a page's text."""
    with app.read_sessions() as s:
        base = svc._filters(select(Record.id).where(visible(s, actor, "record.read")), svc.SearchFilter(**qq.flt))
        for conj in qq.like:
            neg = conj.startswith("-")
            alts = []
            for w in (conj[1:] if neg else conj).split("|"):
                pat = f"%{w}%"
                for f in qq.like_fields:
                    if f == "content":
                        alts.append(Record.id.in_(select(File.record_id).join(FileTextPage, FileTextPage.file_id == File.id)
                                                  .where(File.is_current, FileTextPage.text.like(pat))))
                    else:
                        alts.append(getattr(Record, f).like(pat))
            cond = or_(*alts)
            base = base.where(~cond if neg else cond)
        total = s.scalar(select(func.count()).select_from(base.subquery())) or 0
        ids = list(s.scalars(base.order_by(Record.date.desc(), Record.id.desc()).limit(20)))
        return total, ids


# ---------------------------------------------------------------- the other engine, same run

@contextlib.contextmanager
def sql_engine(app: Dangan) -> Iterator[None]:
    """Answer with the SQL engine (SQLite FTS5 / PostgreSQL full text) instead of the embedded tantivy index."""
    saved_engine, saved_index = app.settings.search_engine, app.__dict__.pop("tantivy", None)
    app.settings.search_engine = "sql"
    try:
        yield
    finally:
        app.settings.search_engine = saved_engine
        app.__dict__.pop("tantivy", None)
        if saved_index is not None:
            app.__dict__["tantivy"] = saved_index


# ---------------------------------------------------------------- measuring

def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]


def timed(fn: Any, *args: Any, **kw: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    r = fn(*args, **kw)
    return (time.perf_counter() - t) * 1000, r


@dataclass
class Row:
    actor: str
    qq: Q
    total: int = 0
    facets_ms: list[float] = field(default_factory=list)
    plain_ms: list[float] = field(default_factory=list)
    like_ms: list[float] = field(default_factory=list)
    like_total: int = -1
    sql_ms: list[float] = field(default_factory=list)
    sql_total: int = -1
    engine: str = ""


class StatementCapture:
    """The statements one search runs (SQLAlchemy cursor events), to be timed one by one afterwards: on SQLite
    the work of a SELECT happens while its rows are fetched, after the cursor event, so each statement is run
    again here and timed up to its last row."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.on, self.rows = engine, False, []
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if self.on and statement.lstrip().upper().startswith("SELECT"):
            self.rows.append((statement, params))

    def __enter__(self) -> StatementCapture:
        self.rows, self.on = [], True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.on = False

    def timings(self, app: Dangan, runs: int = 3) -> list[tuple[float, int, str]]:
        out = []
        with app.read_sessions() as s:
            conn = s.connection()
            for stmt, params in self.rows:
                best, n = float("inf"), 0
                for _ in range(runs):
                    t = time.perf_counter()
                    n = len(conn.exec_driver_sql(stmt, params).fetchall())
                    best = min(best, (time.perf_counter() - t) * 1000)
                out.append((best, n, " ".join(stmt.split())))
        return out


def describe(stmt: str) -> str:
    s = stmt.upper()
    if "GROUP BY" in s:
        col = stmt.split("GROUP BY", 1)[1].split()[0]
        return f"facet ({col})"
    if "COUNT(*)" in s and "FROM (SELECT" in s:
        return "total (count over the hits)"
    if "ORDER BY" in s and ("SCORE" in s or "COALESCE" in s):
        return "page of hits (ranked, limit)"
    if "FILE_TEXT_PAGES" in s:
        return "snippets (page texts of the hits)"
    if "SYSTEM_SETTINGS" in s:
        return "security settings"
    if "FROM RECORDS" in s and "IN (" in s:
        return "hit records"
    return stmt[:60]


# ---------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--with-text", type=int, default=100_000, help="records with ~3 KB of extracted text")
    ap.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--queries", type=Path, help="JSON lines of queries (default: the built-in set of 26)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each query, facets on and off (after a warm-up)")
    ap.add_argument("--like-repeat", type=int, default=1, help="timed runs of the LIKE scan of each query")
    ap.add_argument("--no-like", action="store_true", help="skip the LIKE baseline")
    ap.add_argument("--data", type=Path, help="work folder (default: a new temporary folder, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (and the PostgreSQL database)")
    ap.add_argument("--workers", type=int, default=0, help="segmentation processes (default: cores, at most 4)")
    ap.add_argument("--tiny", action="store_true", help="2,000 records, 200 with text, 2 runs: the smoke test")
    ap.add_argument("--check-targets", action="store_true", help="exit 3 when a target is missed")
    a = ap.parse_args(argv)
    if a.tiny:
        a.records, a.with_text, a.repeat = 2000, 200, 2
    if a.records < 100 or not 0 <= a.with_text <= a.records or a.repeat < 1:
        ap.error("--records must be at least 100, --with-text between 0 and --records, --repeat at least 1")
    return a


@contextlib.contextmanager
def postgres_database(keep: bool) -> Iterator[str]:
    name = f"dangan_bench_search_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        if not keep:
            with admin.connect() as c:
                c.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def machine() -> str:
    cpu = platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}"


def index_size_mb(app: Dangan, pg: bool, db_file: Path | None) -> str:
    with app.engine.connect() as c:
        if pg:
            b = c.scalar(text("SELECT pg_total_relation_size('search_docs')"))
            gin = c.scalar(text("SELECT pg_relation_size('ix_search_docs_tsv')"))
            return f"search_docs {b / 1e6:,.0f} MB (GIN {gin / 1e6:,.0f} MB)"
        with contextlib.suppress(Exception):
            rows = dict(c.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")).all())
            fts = sum(v for k, v in rows.items() if k.startswith("search_fts"))
            return f"search_docs {rows.get('search_docs', 0) / 1e6:,.0f} MB + FTS5 {fts / 1e6:,.0f} MB"
    return f"database file {db_file.stat().st_size / 1e6:,.0f} MB" if db_file and db_file.exists() else "?"


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    own_dir = a.data is None
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-search-")) if own_dir else a.data.resolve()
    if (work / "archive").exists():
        print(f"{work / 'archive'} exists: give an empty or new folder with --data", file=sys.stderr)
        return 2
    checks: list[tuple[str, bool, str]] = []
    targets: list[tuple[str, bool, str]] = []
    print(f"dangan search benchmark: {a.records:,} records, {a.with_text:,} with ~3 KB of text, {a.engine}")
    print(f"machine: {machine()}")
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        with contextlib.ExitStack() as stack:
            db_url = stack.enter_context(postgres_database(a.keep)) if a.engine == "postgresql" else None
            settings = load_settings(work / "archive", database_url=db_url)
            settings.search_index = False  # nothing is indexed behind the benchmark's back
            init(settings, fonds_code="Z109", fonds_name="示范市人民政府办公室", admin_accounts=False)
            app = stack.enter_context(contextlib.closing(Dangan(settings)))
            for k, (code, name) in enumerate(DEPARTMENTS):
                create_department(app, Actor.system(), "Z109", code, name, sort_order=k)
            pg = app.engine.dialect.name == "postgresql"
            db_file = None if pg else Path(app.engine.url.database or "")

            t = time.perf_counter()
            g = generate(app, a.records, a.with_text)
            gen_s = time.perf_counter() - t
            print(f"generated and inserted {g.n:,} records, {g.samples['text_records']:,} with text "
                  f"({g.text_bytes / 1e6:,.0f} MB in {g.pages:,} pages) in {gen_s:.1f} s (not timed as dangan)\n")
            with app.read_sessions() as s:
                ids = list(s.scalars(select(Record.id).order_by(Record.id)))

            # index build: what `dangan reindex` runs (segmentation in worker processes, search_docs + FTS5 /
            # tsvector, then the embedded tantivy index on SQLite)
            workers = a.workers or max(1, min(4, os.cpu_count() or 1))
            t = time.perf_counter()
            last = [0.0]

            def shown(k: int) -> None:
                if time.perf_counter() - last[0] > 15:
                    last[0] = time.perf_counter()
                    print(f"  indexed {k:,} records, {k / (last[0] - t):,.0f}/s", flush=True)

            n_idx = svc.index_records_parallel(app, ids, workers, shown)
            seg_s = time.perf_counter() - t
            tv_s, tv_docs = 0.0, None
            if app.tantivy is not None:
                t2 = time.perf_counter()
                tv_docs = app.tantivy.rebuild(app.engine)
                tv_s = time.perf_counter() - t2
            build_s = time.perf_counter() - t
            per_s = n_idx / build_s
            if pg:
                with app.engine.begin() as c:
                    c.execute(text("ANALYZE"))
            size = index_size_mb(app, pg, db_file)
            print(f"\n  {'figure':<52} {'value':>14}   baseline / comparison")
            print(f"  {'index build (reindex path), records/s':<52} {per_s:>14,.0f}   "
                  f"{n_idx:,} records in {build_s:.1f} s with {workers} segmentation processes; {size}")
            print(f"  {'  segmentation + search_docs + FTS5/tsvector, rec/s':<52} {n_idx / seg_s:>14,.0f}   "
                  f"{seg_s:.1f} s; text {g.text_bytes / 1e6:,.0f} MB, {g.text_bytes / 1e6 / seg_s:.1f} MB/s")
            if tv_docs is not None:
                tv_mb = sum(p.stat().st_size for p in (app.settings.data_dir / "search-index").iterdir()) / 1e6
                print(f"  {'  embedded tantivy index from search_docs, rec/s':<52} {tv_docs / max(tv_s, 1e-9):>14,.0f}   "
                      f"{tv_s:.1f} s, {tv_mb:,.0f} MB")
            targets.append((f"index build >= {TARGET_INDEX_PER_S:,} records/s", per_s >= TARGET_INDEX_PER_S,
                            f"{per_s:,.0f} records/s"))
            checks.append(("every record indexed", n_idx == a.records, f"{n_idx:,} of {a.records:,}"))

            queries = load_queries(a.queries) if a.queries else builtin_queries(g.samples)
            who = actors()
            rows: list[Row] = []
            print(f"\n{len(queries)} queries × {len(who)} readers; services.search.search(audit=False), "
                  f"{a.repeat} timed runs each with facets on and off after one warm-up; times in ms")
            other = "FTS5" if not pg else "-"
            hdr = (f"  {'query':<28} {'hits':>8} {'facets p50':>10} {'p95':>7} {'no-fac p50':>10} {'p95':>7} "
                   f"{'LIKE':>8} {'LIKE hits':>9} {other:>8} {'its hits':>8}")
            for actor_name, actor in who.items():
                print(f"\n  as {actor_name} (clearance {actor.clearance})")
                print(hdr)
                for qq in queries:
                    r = Row(actor_name, qq)
                    flt = svc.SearchFilter(**qq.flt)
                    res = svc.search(app, actor, qq.q, flt, sort=qq.sort, audit=False)  # warm-up
                    r.total, r.engine = res["total"], res["engine"]
                    for _ in range(a.repeat):
                        r.facets_ms.append(timed(svc.search, app, actor, qq.q, flt, sort=qq.sort, audit=False)[0])
                        r.plain_ms.append(timed(svc.search, app, actor, qq.q, flt, sort=qq.sort, facets=False,
                                                audit=False)[0])
                    if not a.no_like:
                        for _ in range(a.like_repeat):
                            ms, (r.like_total, _ids) = timed(like_scan, app, actor, qq)
                            r.like_ms.append(ms)
                    if app.tantivy is not None:  # the same search answered by FTS5, facets on
                        with sql_engine(app):
                            r.sql_total = svc.search(app, actor, qq.q, flt, sort=qq.sort, audit=False)["total"]
                            for _ in range(a.repeat):
                                r.sql_ms.append(timed(svc.search, app, actor, qq.q, flt, sort=qq.sort,
                                                      audit=False)[0])
                    rows.append(r)
                    like = f"{statistics.median(r.like_ms):>8.1f} {r.like_total:>9,}" if r.like_ms else f"{'-':>8} {'-':>9}"
                    tvs = f"{statistics.median(r.sql_ms):>8.1f} {r.sql_total:>8,}" if r.sql_ms else f"{'-':>8} {'-':>8}"
                    print(f"  {qq.name[:28]:<28} {r.total:>8,} {statistics.median(r.facets_ms):>10.1f} "
                          f"{pct(r.facets_ms, 95):>7.1f} {statistics.median(r.plain_ms):>10.1f} "
                          f"{pct(r.plain_ms, 95):>7.1f} {like} {tvs}", flush=True)

            fac = [x for r in rows for x in r.facets_ms]
            plain = [x for r in rows for x in r.plain_ms]
            like = [x for r in rows for x in r.like_ms]
            tvs = [x for r in rows for x in r.sql_ms]
            print(f"\n  overall, {len(rows)} query × reader pairs:")
            print(f"  search with facets:    p50 {pct(fac, 50):8.1f} ms  p95 {pct(fac, 95):8.1f} ms  max {max(fac):8.1f} ms")
            print(f"  search without facets: p50 {pct(plain, 50):8.1f} ms  p95 {pct(plain, 95):8.1f} ms  "
                  f"max {max(plain):8.1f} ms")
            if like:
                print(f"  LIKE scan baseline:    p50 {pct(like, 50):8.1f} ms  p95 {pct(like, 95):8.1f} ms  "
                      f"max {max(like):8.1f} ms  (LIKE p50 / search p50: {pct(like, 50) / max(pct(fac, 50), 1e-9):.2f} "
                      f"with facets, {pct(like, 50) / max(pct(plain, 50), 1e-9):.2f} without)")
            if tvs:
                print(f"  FTS5 (facets on):      p50 {pct(tvs, 50):8.1f} ms  p95 {pct(tvs, 95):8.1f} ms  "
                      f"max {max(tvs):8.1f} ms  (FTS5 p95 / dangan p95: {pct(tvs, 95) / max(pct(fac, 95), 1e-9):.1f})")
            slow = sorted(rows, key=lambda r: -statistics.median(r.facets_ms))[:5]
            print("  slowest (facets on, p50): " + "; ".join(
                f"{r.qq.name} as {r.actor} {statistics.median(r.facets_ms):.0f} ms ({r.total:,} hits)" for r in slow))
            targets.append((f"search p95 <= {TARGET_P95_MS:.0f} ms (facets on)" + ("" if not pg else " [PostgreSQL]"),
                            pct(fac, 95) <= TARGET_P95_MS, f"p95 {pct(fac, 95):.1f} ms"))
            targets.append((f"search p95 <= {TARGET_P95_MS:.0f} ms (facets off)" + ("" if not pg else " [PostgreSQL]"),
                            pct(plain, 95) <= TARGET_P95_MS, f"p95 {pct(plain, 95):.1f} ms"))

            # where the time of the slowest query goes
            worst = slow[0]
            capture = StatementCapture(app.engine)
            with capture:
                total_ms, _ = timed(svc.search, app, who[worst.actor], worst.qq.q, svc.SearchFilter(**worst.qq.flt),
                                    sort=worst.qq.sort, audit=False)
            parts = capture.timings(app)
            print(f"\n  where the time goes: {worst.qq.name!r} ({worst.qq.q}) as {worst.actor}, {total_ms:.0f} ms in all; "
                  "each SELECT run again alone, best of 3, up to its last row:")
            for ms, n, stmt in parts:
                print(f"    {ms:8.1f} ms  {n:>6} rows  {describe(stmt)}")
            print(f"    {total_ms - sum(ms for ms, _, _ in parts):8.1f} ms  the rest (Python: parse, ORM rows, snippets, "
                  "marking; BEGIN)")

            # checks: every query answered; tantivy's totals equal FTS5's (same tokens, same trimming)
            engines = sorted({r.engine for r in rows})
            print(f"  engine that answered: {', '.join(engines)}")
            for r in rows:
                if r.sql_total >= 0 and r.sql_total != r.total:
                    checks.append((f"tantivy total = FTS5 total: {r.qq.name} as {r.actor}", False,
                                   f"tantivy {r.total:,}, FTS5 {r.sql_total:,}"))
            if app.tantivy is not None:
                checks.append(("dangan answered from its tantivy index", engines == ["tantivy"], ", ".join(engines)))
                checks.append(("tantivy totals agree with FTS5", all(r.sql_total == r.total for r in rows),
                               f"{sum(r.sql_total == r.total for r in rows)}/{len(rows)}"))
            checks.append(("the frequent word has hits", rows[0].total > 0, f"{rows[0].total:,}"))
            print(f"\n  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if own_dir and not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    for name, ok, detail in checks:
        print(f"check {'OK  ' if ok else 'FAIL'} {name}: {detail}")
    for name, ok, detail in targets:
        print(f"target {'met   ' if ok else 'MISSED'} {name}: {detail}")
    if not all(ok for _, ok, _ in checks):
        return 1
    if a.check_targets and not all(ok for _, ok, _ in targets):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
