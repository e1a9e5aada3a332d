"""The dashboards' look: one stylesheet shared by the Voila pages and the static HTML."""

from __future__ import annotations

#: Colours of the evidence-strength badge by Maryland Scientific Methods Scale level.
BADGE_COLOURS: dict[int, str] = {
    1: "#b3261e",
    2: "#c25e00",
    3: "#8a6d00",
    4: "#2e7d32",
    5: "#1b5e20",
}
NOT_RATED = "#5f6368"

CSS = """
:root { --ev-ink: #1d2433; --ev-muted: #5a6272; --ev-line: #dde1e7; --ev-accent: #1f4e8c;
        --ev-bg: #f5f6f8; --ev-card: #ffffff; --ev-warn: #b3261e; }
body { background: var(--ev-bg) !important; }
.jp-Notebook, .jp-Cell, .jp-OutputArea-output { background: transparent !important; }
.jp-Cell { max-width: 1120px; margin: 0 auto !important; padding: 0 16px !important; }
.jp-OutputArea-output { overflow: visible !important; }
.ev { font-family: "Segoe UI", "Helvetica Neue", Arial, sans-serif; color: var(--ev-ink);
      font-size: 16px; line-height: 1.5; max-width: 1120px; margin: 0 auto; }
.ev a { color: var(--ev-accent); }
.ev h1 { font-size: 30px; line-height: 1.2; margin: 8px 0 4px; font-weight: 650; }
.ev h2 { font-size: 21px; margin: 0 0 10px; font-weight: 650; }
.ev h3 { font-size: 17px; margin: 14px 0 6px; font-weight: 650; }
.ev p { margin: 6px 0; }
.ev ul { margin: 6px 0 6px 0; padding-left: 22px; }
.ev li { margin: 4px 0; }
.ev-card { background: var(--ev-card); border: 1px solid var(--ev-line); border-radius: 10px;
           padding: 18px 22px; margin: 14px 0; }
.ev-banner { background: #fdecea; border: 2px solid var(--ev-warn); color: #7a1a14;
             border-radius: 10px; padding: 10px 16px; margin: 12px 0; font-weight: 600; }
.ev-crumb { font-size: 14px; margin: 10px 0 0; }
.ev-sub { color: var(--ev-muted); margin: 0 0 4px; }
.ev-index-lead { font-size: 19px !important; font-weight: 500 !important; }
.ev-headline { font-size: 24px; line-height: 1.35; font-weight: 600; margin: 0 0 14px;
               color: var(--ev-ink); }
.ev-keys { display: flex; flex-wrap: wrap; gap: 14px; align-items: stretch; }
.ev-key { border: 1px solid var(--ev-line); border-radius: 8px; padding: 10px 14px; min-width: 180px;
          background: #fafbfc; }
.ev-key .ev-label { font-size: 13px; color: var(--ev-muted); text-transform: uppercase;
                    letter-spacing: .03em; }
.ev-key .ev-value { font-size: 28px; font-weight: 700; line-height: 1.2; }
.ev-key .ev-note { font-size: 14px; color: var(--ev-muted); }
.ev-badge { display: inline-block; color: #fff; border-radius: 999px; padding: 3px 12px;
            font-size: 14px; font-weight: 600; }
.ev-table .ev-badge { font-size: 13px; padding: 2px 10px; }
.ev-tag { display: inline-block; border-radius: 6px; padding: 1px 8px; font-size: 13px;
          font-weight: 600; background: #fdecea; color: #7a1a14; margin-left: 6px; }
.ev-caption { font-size: 14px; color: var(--ev-muted); margin: 2px 0 0; }
.ev-table { border-collapse: collapse; width: 100%; font-size: 15px; table-layout: auto; }
.ev-table tr, .ev-table tbody tr:nth-child(odd), .ev-table tbody tr:hover { background: transparent !important; }
.ev-table th, .ev-table td { text-align: left !important; max-width: none !important; }
.ev-table th { text-align: left; font-size: 13px; text-transform: uppercase; letter-spacing: .03em;
               color: var(--ev-muted); border-bottom: 2px solid var(--ev-line); padding: 8px 10px; }
.ev-table td { border-bottom: 1px solid var(--ev-line); padding: 9px 10px; vertical-align: top; }
.ev-table td.ev-num { white-space: nowrap; }
.ev-effect { font-weight: 700; font-size: 17px; }
.ev-small { font-size: 13px; color: var(--ev-muted); }
.ev-warn { color: var(--ev-warn); }
.ev details { margin: 6px 0; }
.ev summary { cursor: pointer; color: var(--ev-accent); }
.ev code { font-size: 13px; background: #f0f2f5; padding: 1px 4px; border-radius: 4px; }
.ev-plot { background: var(--ev-card); border: 1px solid var(--ev-line); border-radius: 10px;
           padding: 8px; margin: 14px 0 4px; }
.ev-footer { font-size: 13px; color: var(--ev-muted); margin: 18px 0 30px; }
"""
