"""The report's stylesheet, inlined into the page so it works offline from ``file://``."""

CSS = """
:root{
  --ink:#0f172a;--muted:#64748b;--faint:#94a3b8;--line:#e2e8f0;--bg:#f8fafc;--card:#fff;
  --ok:#15803d;--ok-bg:#dcfce7;--bad:#b91c1c;--bad-bg:#fee2e2;--warn:#b45309;--warn-bg:#fef3c7;
  --none:#475569;--none-bg:#e2e8f0;--accent:#1e3a8a;
}
*{box-sizing:border-box}
html{scroll-behavior:smooth;scroll-padding-top:56px}
body{margin:0;background:var(--bg);color:var(--ink);
  font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
code,.mono{font-family:ui-monospace,"SFMono-Regular",Menlo,"DejaVu Sans Mono",monospace;
  font-size:.92em}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
.wrap{max-width:1360px;margin:0 auto;padding:0 28px}
.masthead{background:linear-gradient(120deg,#0b1f44 0%,#1e3a8a 65%,#3b2f7a 100%);color:#e2e8f0;
  padding:26px 0 64px}
.brand{font-size:12px;letter-spacing:.14em;text-transform:uppercase;color:#a5b4fc;font-weight:700}
.masthead h1{margin:4px 0 14px;font-size:28px;font-weight:700;color:#fff;letter-spacing:-.01em}
.meta{display:flex;flex-wrap:wrap;gap:8px 36px;margin:0}
.meta div{min-width:0}
.meta dt{font-size:11px;text-transform:uppercase;letter-spacing:.08em;color:#a5b4fc}
.meta dd{margin:0;color:#fff;overflow-wrap:anywhere}
.meta code{color:#fff}
.strip{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:14px;margin-top:-44px}
.stat{background:var(--card);border-radius:12px;padding:14px 16px 12px;
  box-shadow:0 1px 2px rgba(15,23,42,.06),0 6px 18px rgba(15,23,42,.07);
  border-top:4px solid var(--none-bg)}
.stat .k{font-size:11.5px;text-transform:uppercase;letter-spacing:.07em;color:var(--muted);
  font-weight:600}
.stat .v{font-size:27px;font-weight:700;margin:2px 0 0;font-variant-numeric:tabular-nums;
  white-space:nowrap}
.stat .v small{font-size:14px;font-weight:600;color:var(--muted)}
.stat .s{font-size:12px;color:var(--muted)}
.stat.info{border-top-color:#a5b4fc}.stat.ok{border-top-color:#22c55e}.stat.bad{border-top-color:#ef4444}
.stat.warn{border-top-color:#f59e0b}.stat .v .bad{color:var(--bad)}
.stat.none .v{font-size:17px;color:var(--muted);padding:7px 0 4px}
.toc{position:sticky;top:0;z-index:5;background:rgba(248,250,252,.94);
  backdrop-filter:blur(6px);border-bottom:1px solid var(--line);margin-top:22px}
.toc .wrap{display:flex;gap:4px;padding-top:8px;padding-bottom:8px}
.toc a{color:var(--ink);font-weight:600;font-size:13px;padding:5px 12px;border-radius:999px}
.toc a:hover{background:#e0e7ff;text-decoration:none}
.toc a span{color:var(--faint);font-weight:500;margin-right:6px}
main section{margin:34px 0 10px}
h2{font-size:21px;margin:0 0 4px;letter-spacing:-.01em}
h2 .n{display:inline-block;width:28px;height:28px;line-height:28px;text-align:center;
  border-radius:8px;background:#e0e7ff;color:var(--accent);font-size:15px;margin-right:10px;
  vertical-align:2px}
h3{font-size:15px;margin:22px 0 8px}
.lead{color:var(--muted);margin:0 0 14px;max-width:900px}
.card{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:12px;
  box-shadow:0 1px 2px rgba(15,23,42,.04)}
.graph{padding:10px 12px;overflow-x:auto}
.graph svg{display:block;margin:0 auto;max-width:100%;height:auto}
.lineage .edge{fill:none;stroke-width:1.6;stroke-opacity:.42;transition:stroke-opacity .12s}
.lineage .node{transition:opacity .12s}
.lineage a:hover{text-decoration:none}
.lineage .junction{fill:#64748b;stroke:#fff;stroke-width:1.5}
.lineage .node rect:first-of-type{stroke-width:1.2}
.lineage .node:hover rect:first-of-type{stroke-width:2.2}
.lineage .label{font-size:12.5px;font-weight:650;fill:var(--ink)}
.lineage .detail{font-size:10.5px;fill:var(--muted)}
.lineage .col-title{font-size:11px;font-weight:700;letter-spacing:.09em;
  text-transform:uppercase;fill:var(--muted)}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;margin:10px 4px 0;font-size:12.5px;
  color:var(--muted)}
.legend i.dot{width:9px;height:9px;border-radius:50%;background:#64748b;border:0;
  vertical-align:0}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:6px;
  vertical-align:-1px;border:1.5px solid}
.note{font-size:13px;color:#334155;background:#f1f5f9;border-left:4px solid #94a3b8;
  padding:8px 12px;border-radius:0 8px 8px 0;margin:12px 0 0}
.note.warn{background:#fffbeb;border-left-color:#f59e0b}
table{width:100%;border-collapse:collapse;font-size:13.5px}
th{font-size:11.5px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
  text-align:left;font-weight:650;padding:9px 12px;border-bottom:1px solid var(--line);
  background:#f8fafc;white-space:nowrap}
td{padding:8px 12px;border-bottom:1px solid #f1f5f9;vertical-align:top}
tbody tr:last-child td{border-bottom:0}
tr:target td{background:#eef2ff}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.when{white-space:nowrap;font-variant-numeric:tabular-nums}
td.nowrap{white-space:nowrap}
td .sub{display:block;font-size:12px;color:var(--muted)}
a.title{font-weight:650;white-space:nowrap}
td.status{white-space:nowrap}
tr.group td{background:#f8fafc;padding:7px 12px;font-size:12.5px;
  border-bottom:1px solid var(--line)}
.card>table th:first-child{border-top-left-radius:12px}
.card>table th:last-child{border-top-right-radius:12px}
.badge{display:inline-block;font-size:11.5px;font-weight:700;letter-spacing:.04em;
  text-transform:uppercase;padding:2px 9px;border-radius:999px;white-space:nowrap}
.b-ok{color:var(--ok);background:var(--ok-bg)}.b-bad{color:var(--bad);background:var(--bad-bg)}
.b-warn{color:var(--warn);background:var(--warn-bg)}
.b-none{color:var(--none);background:var(--none-bg)}
.layer{display:inline-block;font-size:11.5px;font-weight:600;padding:1px 8px;border-radius:6px;
  border:1px solid}
.srow{display:grid;align-items:start;gap:0 14px;padding:9px 14px 9px 30px;
  grid-template-columns:minmax(220px,2.4fr) 110px 64px 76px 100px 76px 64px 150px
    minmax(110px,1fr);
  border-bottom:1px solid #f1f5f9;font-size:13.5px;position:relative}
.srow .num{text-align:right;font-variant-numeric:tabular-nums}
.srow .when{white-space:nowrap;font-variant-numeric:tabular-nums}
.srow .sub{display:block;font-size:12px;color:var(--muted)}
.srow.head{font-size:11.5px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
  font-weight:650;background:#f8fafc;border-bottom:1px solid var(--line);
  border-radius:12px 12px 0 0}
.suites>:last-child,.suites>details:last-child>summary{border-bottom:0}
summary.srow{cursor:pointer;list-style:none}
summary.srow::-webkit-details-marker{display:none}
summary.srow::before{content:"";position:absolute;left:13px;top:15px;border:5px solid transparent;
  border-left:6px solid var(--faint);transition:transform .12s}
details[open]>summary.srow::before{transform:rotate(90deg) translate(2px,-2px)}
summary.srow:hover{background:#f8fafc}
details.suite[open]{background:#fcfcfd}
.outcomes{padding:2px 14px 14px 30px;border-bottom:1px solid var(--line)}
.outcomes table{background:#fff;border:1px solid var(--line);border-radius:8px;
  font-size:12.5px}
.outcomes caption{text-align:left;font-size:12px;color:var(--muted);padding:2px 0 6px}
.outcomes td,.outcomes th{padding:5px 10px;vertical-align:middle}
.history svg{display:block;margin-top:3px}
.hint{font-size:12.5px;margin:8px 2px 0}
.muted{color:var(--muted)}
.pill-link{display:inline-block;font-weight:600;font-size:13px;padding:6px 14px;
  border-radius:999px;background:#e0e7ff;margin:0 0 14px}
.grid2{display:grid;grid-template-columns:minmax(0,1.6fr) minmax(0,1fr);gap:18px}
.bar{display:inline-block;height:8px;border-radius:4px;background:#f87171;vertical-align:1px;
  margin-right:8px}
.empty{padding:18px 16px;color:var(--muted)}
footer{margin:46px 0 0;padding:18px 0 30px;border-top:1px solid var(--line);
  color:var(--muted);font-size:12.5px}
@media (max-width:1100px){.strip{grid-template-columns:repeat(2,minmax(0,1fr))}
  .grid2{grid-template-columns:1fr}}
@media print{.toc{display:none}.masthead{padding-bottom:20px}.strip{margin-top:14px}}
"""
